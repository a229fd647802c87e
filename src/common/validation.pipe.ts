import { ArgumentMetadata, ValidationError, ValidationPipe } from '@nestjs/common';
import { FieldError } from './problem';
import { ValidationFailedException } from './problem.catalogue';

/** Keys class-transformer drops silently, so whitelisting alone would not refuse them. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function toFieldErrors(errors: ValidationError[], parent = ''): FieldError[] {
  return errors.flatMap((error) => {
    const field = error.property ? `${parent}${error.property}` : '(body)';
    const own = Object.values(error.constraints ?? {}).map((message) => ({ field, message }));
    return [...own, ...toFieldErrors(error.children ?? [], `${field}.`)];
  });
}

/**
 * The global pipe: DTO validation with unknown fields refused, failures as problem+json.
 * A DTO body must be a JSON object: an array or a bare value is refused before validation,
 * where it would otherwise be read as an object with fields "0", "1", ...
 */
export class AppValidationPipe extends ValidationPipe {
  constructor() {
    super({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      stopAtFirstError: true,
      validationError: { target: false, value: false },
      exceptionFactory: (errors) => new ValidationFailedException(toFieldErrors(errors)),
    });
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    const isDtoBody = metadata.type === 'body' && metadata.metatype && this.toValidate(metadata);
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
    }
    return super.transform(value, metadata);
  }
}
