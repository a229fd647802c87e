/**
 * A conversation's inbox state: its status, who holds it, who the customer is, its metadata,
 * and what each side has not read. The rules here are the one copy every store applies: the
 * in-memory store mutates its record with them, and the Redis store computes the new state
 * with them and writes it with a compare-and-set on the state's seq (update-4.lua), so no Lua
 * script repeats them.
 */

export type ConversationStatus = 'open' | 'pending' | 'snoozed' | 'resolved';
export const STATUSES: readonly ConversationStatus[] = ['open', 'pending', 'snoozed', 'resolved'];

/** Who the customer is, as the caller's own system names them. Every field optional. */
export interface CustomerDetails {
  externalId?: string;
  name?: string;
  email?: string;
}

/** Flat: keys ^[A-Za-z0-9_.-]{1,64}$, values strings, finite numbers or booleans. */
export type Metadata = Record<string, string | number | boolean>;

/** An assignee or team id; `none` and `any` are list filters, never ids. */
export const PRINCIPAL_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;
export const RESERVED_IDS: readonly string[] = ['none', 'any'];
export const METADATA_KEY_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const METADATA_MAX_KEYS = 50;
export const METADATA_MAX_BYTES = 4_096;
export const METADATA_MAX_STRING = 256;
export const CUSTOMER_FIELD_MAX = 256;

/**
 * The state fields a change may set, as a JSON merge patch (RFC 7396): an absent field is left
 * as it is, `null` removes (customer and metadata merge key by key).
 */
export interface StatePatch {
  status?: ConversationStatus;
  snoozedUntil?: number | null;
  assignee?: string | null;
  team?: string | null;
  customer?: { [K in keyof CustomerDetails]?: string | null } | null;
  metadata?: Record<string, string | number | boolean | null> | null;
}

/** The state fields a change names in its event (`changed`), in this order. */
export const STATE_FIELDS = [
  'status',
  'snoozedUntil',
  'assignee',
  'team',
  'customer',
  'metadata',
] as const;
export type StateField = (typeof STATE_FIELDS)[number];

/** The state as a store keeps it: 0 and '' for none, so that every record has one shape. */
export interface StoredState {
  status: ConversationStatus;
  /** With `snoozed`: when it wakes; else 0. */
  snoozedUntil: number;
  /** '' unassigned. */
  assignee: string;
  /** '' no team. */
  team: string;
  customer: CustomerDetails;
  metadata: Metadata;
  /** The seq the last state change took (0: none since the create): what If-Match compares. */
  stateSeq: number;
}

/** What the record keeps beside the state, kept up by posts, deletes and reads. */
export interface StoredCounters {
  /** Standing agent messages past the customer's read horizon. */
  unreadCustomer: number;
  /** Standing customer messages past the agent's read horizon. */
  unreadAgent: number;
  /** The server time of the first customer message after the last agent message; 0: none. */
  waitingSince: number;
}

export const initialState = (): StoredState => ({
  status: 'open',
  snoozedUntil: 0,
  assignee: '',
  team: '',
  customer: {},
  metadata: {},
  stateSeq: 0,
});

/** Why a state change was refused: a StoreErrorCode, or a field of the patch. */
export type StateRefusal =
  | { code: 'precondition_failed' }
  | { code: 'already_assigned'; assignee: string }
  | { code: 'validation_failed'; field: string; message: string };

/**
 * The state after `patch`, and which fields it changed (none: nothing to write, no seq).
 * With `claim`, the patch only assigns, and only an unassigned conversation (or one already
 * held by the same assignee, which changes nothing). Never mutates `state`.
 */
export function patchedState(
  state: StoredState,
  patch: StatePatch,
  claim: boolean,
): { next: StoredState; changed: StateField[] } | StateRefusal {
  if (claim && state.assignee !== '' && state.assignee !== patch.assignee) {
    return { code: 'already_assigned', assignee: state.assignee };
  }
  const next: StoredState = { ...state };
  if (patch.status !== undefined) {
    next.status = patch.status;
    if (patch.status !== 'snoozed') {
      next.snoozedUntil = 0;
    }
  }
  if (patch.snoozedUntil !== undefined) {
    next.snoozedUntil = patch.snoozedUntil ?? 0;
  }
  if (next.status === 'snoozed' && next.snoozedUntil === 0) {
    return {
      code: 'validation_failed',
      field: 'snoozedUntil',
      message: 'a snoozed conversation needs snoozedUntil',
    };
  }
  if (next.status !== 'snoozed' && next.snoozedUntil !== 0) {
    return {
      code: 'validation_failed',
      field: 'snoozedUntil',
      message: 'snoozedUntil goes with status snoozed only',
    };
  }
  if (patch.assignee !== undefined) {
    next.assignee = patch.assignee ?? '';
  }
  if (patch.team !== undefined) {
    next.team = patch.team ?? '';
  }
  if (patch.customer !== undefined) {
    next.customer = canonicalCustomer(
      merged(state.customer as Record<string, unknown>, patch.customer) as CustomerDetails,
    );
  }
  if (patch.metadata !== undefined) {
    next.metadata = merged(state.metadata, patch.metadata) as Metadata;
    const keys = Object.keys(next.metadata).length;
    if (keys > METADATA_MAX_KEYS) {
      return {
        code: 'validation_failed',
        field: 'metadata',
        message: `metadata holds at most ${METADATA_MAX_KEYS} keys (it would hold ${keys})`,
      };
    }
    const bytes = Buffer.byteLength(JSON.stringify(next.metadata));
    if (bytes > METADATA_MAX_BYTES) {
      return {
        code: 'validation_failed',
        field: 'metadata',
        message: `metadata holds at most ${METADATA_MAX_BYTES} bytes as compact JSON (it would hold ${bytes})`,
      };
    }
  }
  const changed = STATE_FIELDS.filter((field) => !sameValue(state[field], next[field]));
  return { next, changed };
}

/** The customer's fields in one order (externalId, name, email), whatever order they came in. */
export function canonicalCustomer(customer: CustomerDetails): CustomerDetails {
  const out: CustomerDetails = {};
  if (customer.externalId !== undefined) {
    out.externalId = customer.externalId;
  }
  if (customer.name !== undefined) {
    out.name = customer.name;
  }
  if (customer.email !== undefined) {
    out.email = customer.email;
  }
  return out;
}

/** A merge patch of a flat object: `null` removes a key; `null` for the whole removes all. */
function merged(
  base: Record<string, unknown>,
  patch: Record<string, unknown> | null,
): Record<string, unknown> {
  if (patch === null) {
    return {};
  }
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete out[key];
    } else {
      out[key] = value;
    }
  }
  return out;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return a === b;
  }
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = Object.keys(left);
  return (
    keys.length === Object.keys(right).length &&
    keys.every((key) => Object.hasOwn(right, key) && left[key] === right[key])
  );
}

/**
 * Whether If-Match refuses a change: the conversation is another life of the id, or a state
 * change took a seq above the version the caller read (messages alone never refuse it).
 */
export function failsIfMatch(
  record: { life: number; stateSeq: number },
  ifMatch: { life: number; version: number } | undefined,
): boolean {
  return (
    ifMatch !== undefined && (ifMatch.life !== record.life || record.stateSeq > ifMatch.version)
  );
}

/** The patch a customer's post makes of a snoozed or resolved conversation: none otherwise. */
export function reopenedBy(state: StoredState): StatePatch | null {
  return state.status === 'snoozed' || state.status === 'resolved' ? { status: 'open' } : null;
}

/** The patch that wakes a snooze that is due at `now`: none otherwise. */
export function wokenAt(state: StoredState, now: number): StatePatch | null {
  return state.status === 'snoozed' && state.snoozedUntil <= now ? { status: 'open' } : null;
}

/**
 * A snooze reads as open from snoozedUntil on, before its owner writes the wake: what every
 * answer shows.
 */
export function statusAt(
  state: Pick<StoredState, 'status' | 'snoozedUntil'>,
  now: number,
): { status: ConversationStatus; snoozedUntil: number | null } {
  if (state.status === 'snoozed' && state.snoozedUntil > now) {
    return { status: 'snoozed', snoozedUntil: state.snoozedUntil };
  }
  return { status: state.status === 'snoozed' ? 'open' : state.status, snoozedUntil: null };
}

/**
 * The conversation.updated event's data, as an API key sees it (a customer token's view is
 * customerUpdateView of it). `changed` names the state fields the change set.
 * twin: src/conversations/repositories/redis/scripts/includes/stateJson.lua (the same text, for a reopen)
 */
export function stateChangeJson(seq: number, changed: StateField[], state: StoredState): string {
  return JSON.stringify({
    seq,
    changed,
    status: state.status,
    snoozedUntil: state.snoozedUntil || null,
    assignee: state.assignee || null,
    team: state.team || null,
    customer: state.customer,
    metadata: state.metadata,
  });
}

/** What a customer token is told of a conversation.updated: the seq, status and snooze. */
export function customerUpdateView(data: string): string {
  const full = JSON.parse(data) as { seq: number; status: string; snoozedUntil: number | null };
  return JSON.stringify({ seq: full.seq, status: full.status, snoozedUntil: full.snoozedUntil });
}
