// Fast path: mirrors class-validator@0.15.1 validate() as ValidationPipe runs it (whitelist,
// forbidNonWhitelisted) and class-transformer@0.5.1 plainToInstance, whose metadata it reads
// by a deep import (cjs/storage). Held equal by src/http/fast-path/compiled-dto.spec.ts.
import { getMetadataStorage, ValidationArguments, ValidationTypes } from 'class-validator';
import type { ValidationMetadata } from 'class-validator/types/metadata/ValidationMetadata';

/**
 * class-transformer's decorator metadata. Not in its index; @nestjs/mapped-types reads it the
 * same way (`type-helpers.utils`) to carry transforms over to derived DTOs.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const transformerStorage = (require('class-transformer/cjs/storage') as TransformerStorageModule)
  .defaultMetadataStorage;

interface TransformerStorageModule {
  defaultMetadataStorage: {
    getStrategy(target: object): string;
    findTransformMetadatas(target: object, property: string, type: number): unknown[];
    findTypeMetadata(target: object, property: string): unknown;
    findExposeMetadata(target: object, property: string): unknown;
    findExcludeMetadata(target: object, property: string): unknown;
  };
}

/** class-transformer's TransformationType.PLAIN_TO_CLASS. */
const PLAIN_TO_CLASS = 0;

type DtoClass = new () => object;

interface PropertyCheck {
  property: string;
  /** @ValidateIf conditions: when one is false, the property is not validated at all. */
  conditions: ((object: object, value: unknown) => boolean)[];
  rules: {
    metadata: ValidationMetadata;
    validate: (value: unknown, args: ValidationArguments) => unknown;
  }[];
}

/**
 * A DTO's class-validator rules, compiled once into one synchronous check: the answer for a
 * body that passes every rule, built as class-transformer and class-validator would build it.
 *
 * It only ever says yes. It answers `undefined` for anything it is not sure of (an unknown
 * field, a nested value, a rule that fails), and the caller then runs class-transformer and
 * class-validator as usual, which find the errors and write their messages. So the rules stay
 * written once, as decorators on the DTO, and the error bodies cannot change.
 */
export type CompiledDto = (body: Record<string, unknown>) => object | undefined;

/**
 * Compiles a DTO class, or answers null when it uses anything the check does not reproduce
 * exactly: groups, `each`, nested or asynchronous rules, @IsDefined, any class-transformer
 * decorator (@Transform, @Type, @Expose, @Exclude). Such a DTO is always validated the usual
 * way.
 */
export function compileDto(metatype: DtoClass): CompiledDto | null {
  const storage = getMetadataStorage();
  // The same call ValidationExecutor makes with no groups, `always` or `strictGroups`.
  const metadatas = storage.getTargetValidationMetadatas(metatype, '', false, false);
  if (metadatas.length === 0 || transformerStorage.getStrategy(metatype) !== 'none') {
    return null;
  }
  const byProperty = new Map<string, ValidationMetadata[]>();
  for (const metadata of metadatas) {
    const list = byProperty.get(metadata.propertyName) ?? [];
    list.push(metadata);
    byProperty.set(metadata.propertyName, list);
  }
  const checks: PropertyCheck[] = [];
  for (const [property, list] of byProperty) {
    if (
      transformerStorage.findTransformMetadatas(metatype, property, PLAIN_TO_CLASS).length > 0 ||
      transformerStorage.findTypeMetadata(metatype, property) ||
      transformerStorage.findExposeMetadata(metatype, property) ||
      transformerStorage.findExcludeMetadata(metatype, property)
    ) {
      return null;
    }
    const check: PropertyCheck = { property, conditions: [], rules: [] };
    for (const metadata of list) {
      if (metadata.each || (metadata.groups?.length ?? 0) > 0 || metadata.always) {
        return null;
      }
      if (metadata.type === ValidationTypes.CONDITIONAL_VALIDATION) {
        check.conditions.push(metadata.constraints[0] as PropertyCheck['conditions'][number]);
      } else if (metadata.type === ValidationTypes.CUSTOM_VALIDATION) {
        for (const constraint of storage.getTargetValidatorConstraints(metadata.constraintCls)) {
          if (constraint.async) {
            return null;
          }
          const instance = constraint.instance;
          check.rules.push({ metadata, validate: (value, args) => instance.validate(value, args) });
        }
      } else {
        return null;
      }
    }
    checks.push(check);
  }
  const allowed = new Set(byProperty.keys());
  const targetName = metatype.name;

  return (body) => {
    // class-transformer's copy of a plain object of primitives: the same keys, the same values.
    const entity = new metatype() as Record<string, unknown>;
    for (const key of Object.keys(body)) {
      const value = body[key];
      if (!allowed.has(key) || (typeof value === 'object' && value !== null)) {
        return undefined;
      }
      entity[key] = value;
    }
    for (const { property, conditions, rules } of checks) {
      const value = entity[property];
      if (!conditions.every((condition) => condition(entity, value))) {
        continue;
      }
      for (const { metadata, validate } of rules) {
        if (metadata.validateIf && !metadata.validateIf(entity, value)) {
          continue;
        }
        const args: ValidationArguments = {
          targetName,
          property,
          object: entity,
          value,
          constraints: metadata.constraints,
        };
        if (validate(value, args) !== true) {
          return undefined; // invalid, or a promise after all: the usual path decides
        }
      }
    }
    return entity;
  };
}
