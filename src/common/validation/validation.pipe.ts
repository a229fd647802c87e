import { ArgumentMetadata, PipeTransform, ValidationError, ValidationPipe } from '@nestjs/common';
import { CompiledDto, compileDto } from '../../http/fast-path/compiled-dto';
import { FieldError } from '../errors/problem';
import { ValidationFailedException } from '../errors/problem.catalogue';

/** Keys class-transformer drops silently, so whitelisting alone would not refuse them. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function toFieldErrors(errors: ValidationError[], parent = ''): FieldError[] {
  return errors.flatMap((error) => {
    const field = error.property ? `${parent}${error.property}` : '(body)';
    const own = Object.values(error.constraints ?? {}).map((message) => ({ field, message }));
    return [...own, ...toFieldErrors(error.children ?? [], `${field}.`)];
  });
}

/** Nest's ValidationPipe, with its answer to "is this a DTO to validate?" made public. */
class ClassValidatorPipe extends ValidationPipe {
  validates(metadata: ArgumentMetadata): boolean {
    return Boolean(metadata.metatype) && this.toValidate(metadata);
  }
}

/**
 * The global pipe: DTO validation with unknown fields refused, failures as problem+json.
 * A DTO body must be a JSON object: an array or a bare value is refused before validation,
 * where it would otherwise be read as an object with fields "0", "1", ...
 *
 * On the hot path (see http/fast-path/compiled-dto.ts), a body DTO's rules run as one
 * synchronous check compiled once from its decorators; a body it does not accept goes through
 * class-transformer and class-validator as before, which write the errors. The parameters this pipe has nothing
 * to do for are answered without a promise, exactly as ValidationPipe would answer them.
 */
export class AppValidationPipe implements PipeTransform {
  private readonly classValidator = new ClassValidatorPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    stopAtFirstError: true,
    validationError: { target: false, value: false },
    exceptionFactory: (errors) => new ValidationFailedException(toFieldErrors(errors)),
  });
  private readonly compiled = new Map<unknown, CompiledDto | null>();

  /** @param compile false runs class-validator for every body (the reference in the specs) */
  constructor(private readonly compile = true) {}

  transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> | unknown {
    // ValidationPipe leaves custom decorators alone (validateCustomDecorators is off), and
    // hands a string route parameter declared as a string back as it is (String(value)).
    if (metadata.type === 'custom') {
      return value;
    }
    if (metadata.type === 'param' && metadata.metatype === String && typeof value === 'string') {
      return value;
    }
    const isDtoBody = metadata.type === 'body' && this.classValidator.validates(metadata);
    if (
      isDtoBody &&
      value !== undefined &&
      (typeof value !== 'object' || !value || Array.isArray(value))
    ) {
      throw new ValidationFailedException([
        { field: '(body)', message: 'the body must be a JSON object' },
      ]);
    }
    if (isDtoBody && value) {
      const reserved = Object.keys(value).filter((key) => RESERVED_KEYS.has(key));
      if (reserved.length > 0) {
        throw new ValidationFailedException(
          reserved.map((field) => ({ field, message: `property ${field} should not exist` })),
        );
      }
      const accepted = this.compiledFor(metadata.metatype)?.(value as Record<string, unknown>);
      if (accepted) {
        return accepted;
      }
    }
    return this.classValidator.transform(value, metadata);
  }

  private compiledFor(metatype: ArgumentMetadata['metatype']): CompiledDto | null {
    if (!this.compile) {
      return null;
    }
    let compiled = this.compiled.get(metatype);
    if (compiled === undefined) {
      compiled = compileDto(metatype as new () => object);
      this.compiled.set(metatype, compiled);
    }
    return compiled;
  }
}
