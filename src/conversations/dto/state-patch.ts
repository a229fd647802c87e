import { FieldError } from '../../common/errors/problem';
import { ValidationFailedException } from '../../common/errors/problem.catalogue';
import {
  CUSTOMER_FIELD_MAX,
  METADATA_KEY_PATTERN,
  METADATA_MAX_BYTES,
  METADATA_MAX_KEYS,
  METADATA_MAX_STRING,
  PRINCIPAL_ID_PATTERN,
  RESERVED_IDS,
  StatePatch,
  STATUSES,
} from '../records/conversation-state';
import type { InitialState } from '../records/conversation.codec';

/** What a state change may say, beyond its shape: the clock and SNOOZE_MAX_MS. */
export interface PatchRules {
  now: number;
  snoozeMaxMs: number;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,190}$/;

/** An assignee or team id: the pattern, and not a reserved word. */
export function principalIdError(field: string, value: unknown): FieldError | null {
  if (typeof value !== 'string' || !PRINCIPAL_ID_PATTERN.test(value)) {
    return { field, message: `${field} must match ${PRINCIPAL_ID_PATTERN.source}, or be null` };
  }
  if (RESERVED_IDS.includes(value)) {
    return {
      field,
      message: `${field} must not be "${value}": it is reserved for the list filters`,
    };
  }
  return null;
}

/** A customer field's text: a string of 1 to CUSTOMER_FIELD_MAX characters, no control characters. */
function textError(field: string, value: unknown, max = CUSTOMER_FIELD_MAX): FieldError | null {
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    value.length > max ||
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f]/.test(value) ||
    !value.isWellFormed()
  ) {
    return {
      field,
      message: `${field} must be text of 1 to ${max} characters, without control characters`,
    };
  }
  return null;
}

function customerErrors(value: unknown, nullable: boolean, errors: FieldError[]): void {
  if (!isObject(value)) {
    errors.push({ field: 'customer', message: 'customer must be an object' });
    return;
  }
  for (const [key, field] of Object.entries(value)) {
    const name = `customer.${key}`;
    if (key !== 'externalId' && key !== 'name' && key !== 'email') {
      errors.push({ field: name, message: `property ${name} should not exist` });
    } else if (field === null && nullable) {
      continue;
    } else if (key === 'externalId') {
      const error = textError(name, field, 128);
      if (error) {
        errors.push(error);
      }
    } else if (key === 'email') {
      if (typeof field !== 'string' || field.length > 254 || !EMAIL.test(field)) {
        errors.push({ field: name, message: `${name} must be an email address` });
      }
    } else {
      const error = textError(name, field);
      if (error) {
        errors.push(error);
      }
    }
  }
}

function metadataErrors(value: unknown, nullable: boolean, errors: FieldError[]): void {
  if (!isObject(value)) {
    errors.push({ field: 'metadata', message: 'metadata must be a flat object' });
    return;
  }
  const keys = Object.keys(value);
  if (keys.length > METADATA_MAX_KEYS) {
    errors.push({ field: 'metadata', message: `metadata holds at most ${METADATA_MAX_KEYS} keys` });
  }
  for (const key of keys) {
    const field = `metadata.${key}`;
    const item = value[key];
    if (!METADATA_KEY_PATTERN.test(key)) {
      errors.push({ field, message: `metadata keys must match ${METADATA_KEY_PATTERN.source}` });
    } else if (key === '__proto__') {
      // The pattern lets it through, but a merge's assignment would drop it silently (it sets
      // the prototype) while a create kept it: refused in both.
      errors.push({ field, message: 'metadata keys must not be __proto__' });
    } else if (item === null && nullable) {
      continue;
    } else if (typeof item === 'string') {
      if (item.length > METADATA_MAX_STRING || !item.isWellFormed()) {
        errors.push({
          field,
          message: `${field} must be at most ${METADATA_MAX_STRING} characters of valid Unicode`,
        });
      }
    } else if (!(
      typeof item === 'boolean' ||
      (typeof item === 'number' && Number.isFinite(item))
    )) {
      errors.push({
        field,
        message: `${field} must be a string, a finite number or a boolean${nullable ? ' (null removes it)' : ''}`,
      });
    }
  }
}

const PATCH_FIELDS = ['status', 'snoozedUntil', 'assignee', 'team', 'customer', 'metadata'];

/**
 * A PATCH body as a StatePatch, or 400 validation_failed naming every field at fault. The
 * rules that need the stored state (a snooze without snoozedUntil, metadata past its limits
 * once merged) are patchedState's, in the store.
 */
export function parseStatePatch(body: unknown, rules: PatchRules): StatePatch {
  if (!isObject(body)) {
    throw new ValidationFailedException([
      { field: '(body)', message: 'the body must be a JSON object' },
    ]);
  }
  const errors: FieldError[] = [];
  for (const key of Object.keys(body)) {
    if (!PATCH_FIELDS.includes(key)) {
      errors.push({ field: key, message: `property ${key} should not exist` });
    }
  }
  const { status, snoozedUntil, assignee, team, customer, metadata } = body;
  if (status !== undefined && !STATUSES.includes(status as never)) {
    errors.push({ field: 'status', message: `status must be one of: ${STATUSES.join(', ')}` });
  }
  if (snoozedUntil !== undefined && snoozedUntil !== null) {
    if (!Number.isSafeInteger(snoozedUntil)) {
      errors.push({ field: 'snoozedUntil', message: 'snoozedUntil must be an integer time in ms' });
    } else if ((snoozedUntil as number) <= rules.now) {
      errors.push({ field: 'snoozedUntil', message: 'snoozedUntil must be in the future' });
    } else if ((snoozedUntil as number) > rules.now + rules.snoozeMaxMs) {
      errors.push({
        field: 'snoozedUntil',
        message: `snoozedUntil must be at most ${rules.snoozeMaxMs} ms ahead (SNOOZE_MAX_MS)`,
      });
    } else if (status !== undefined && status !== 'snoozed') {
      errors.push({ field: 'snoozedUntil', message: 'snoozedUntil goes with status snoozed only' });
    }
  }
  if (status === 'snoozed' && (snoozedUntil === undefined || snoozedUntil === null)) {
    errors.push({ field: 'snoozedUntil', message: 'status snoozed needs snoozedUntil' });
  }
  for (const [field, value] of [
    ['assignee', assignee],
    ['team', team],
  ] as const) {
    const error = value === undefined || value === null ? null : principalIdError(field, value);
    if (error) {
      errors.push(error);
    }
  }
  if (customer !== undefined && customer !== null) {
    customerErrors(customer, true, errors);
  }
  if (metadata !== undefined && metadata !== null) {
    metadataErrors(metadata, true, errors);
  }
  if (errors.length > 0) {
    throw new ValidationFailedException(errors);
  }
  return body as StatePatch;
}

const CREATE_FIELDS = ['status', 'assignee', 'team', 'customer', 'metadata'];

/**
 * A create's optional body as the conversation's initial state, or 400 validation_failed.
 * `anonymous` (a create without an API key) may set only customer.name and customer.email.
 */
export function parseInitialState(body: unknown, anonymous: boolean): InitialState | undefined {
  if (body === undefined) {
    return undefined;
  }
  if (!isObject(body)) {
    throw new ValidationFailedException([
      { field: '(body)', message: 'the body must be empty or a JSON object' },
    ]);
  }
  const errors: FieldError[] = [];
  for (const key of Object.keys(body)) {
    if (!CREATE_FIELDS.includes(key)) {
      errors.push({ field: key, message: `property ${key} should not exist` });
    } else if (anonymous && key !== 'customer') {
      errors.push({ field: key, message: `${key} takes an API key` });
    }
  }
  const { status, assignee, team, customer, metadata } = body;
  if (status !== undefined && status !== 'open' && status !== 'pending') {
    errors.push({ field: 'status', message: 'status must be one of: open, pending' });
  }
  for (const [field, value] of [
    ['assignee', assignee],
    ['team', team],
  ] as const) {
    const error = value === undefined ? null : principalIdError(field, value);
    if (error) {
      errors.push(error);
    }
  }
  if (customer !== undefined) {
    customerErrors(customer, false, errors);
    if (anonymous && isObject(customer) && customer.externalId !== undefined) {
      errors.push({
        field: 'customer.externalId',
        message: 'customer.externalId takes an API key',
      });
    }
  }
  if (metadata !== undefined) {
    metadataErrors(metadata, false, errors);
    if (isObject(metadata)) {
      const bytes = Buffer.byteLength(JSON.stringify(metadata));
      if (bytes > METADATA_MAX_BYTES) {
        errors.push({
          field: 'metadata',
          message: `metadata holds at most ${METADATA_MAX_BYTES} bytes as compact JSON`,
        });
      }
    }
  }
  if (errors.length > 0) {
    throw new ValidationFailedException(errors);
  }
  return body as InitialState;
}
