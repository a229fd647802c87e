import { Transform } from 'class-transformer';

/** A plain decimal integer: no sign, space, leading zero, exponent, or 0x, 0b, 0o prefix. */
const DECIMAL = /^(0|[1-9][0-9]*)$/;
/** The same with a minus sign allowed (not on 0), so that @Min refuses it with its message. */
const SIGNED_DECIMAL = /^(0|-?[1-9][0-9]*)$/;

function safeInteger(value: unknown, pattern: RegExp): number | undefined {
  if (typeof value !== 'string' || !pattern.test(value)) {
    return undefined;
  }
  const number = Number(value);
  return Number.isSafeInteger(number) ? number : undefined;
}

/** The safe integer, 0 or more, that `value` spells in plain decimal; undefined otherwise. */
export function parseDecimal(value: unknown): number | undefined {
  return safeInteger(value, DECIMAL);
}

/**
 * For an integer query parameter: converts plain decimal text to its number and leaves
 * anything else as it came (`0x10`, `1e2`, ` 1`, an empty value, a repeated parameter's
 * array) for the property's @IsInt to refuse. Number() would accept all of those.
 */
export const DecimalInteger = (): PropertyDecorator =>
  Transform(({ value }: { value: unknown }) => safeInteger(value, SIGNED_DECIMAL) ?? value);
