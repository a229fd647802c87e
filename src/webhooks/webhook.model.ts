import { randomUUID } from 'node:crypto';
import type { EvictedConversation, TappedChange } from '../conversations/change-outbox';
import { newSecret } from './signature';

export type { EvictedConversation, TappedChange };

/**
 * What every webhook store keeps and how it reads: endpoints, events and deliveries, and the
 * rules on them that do not depend on where they are kept. The memory store (the primary's)
 * and the Redis store apply these same functions.
 */

/** Every event type, in the order docs/webhooks.md lists them. */
export const WEBHOOK_EVENT_TYPES = [
  'conversation.created',
  'message.created',
  'message.deleted',
  'conversation.read',
  'conversation.updated',
  'conversation.evicted',
  'conversation.transcript',
  'webhook.test',
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** A filter entry: an exact type, `conversation.*`, `message.*` or `*`. */
export const WEBHOOK_EVENT_PATTERNS: readonly string[] = [
  ...WEBHOOK_EVENT_TYPES,
  'conversation.*',
  'message.*',
  '*',
];

/** Why an endpoint was disabled. */
export type DisabledReason = 'gone' | 'failing' | 'backlog' | 'manual';

/** Old secrets that may sign beside the current one at once (Svix's limit). */
export const MAX_OLD_SECRETS = 5;
/** How long a rotated-out secret keeps signing. */
export const OLD_SECRET_OVERLAP_MS = 24 * 60 * 60 * 1000;
/** A transcript part's body is at most this many bytes. */
export const TRANSCRIPT_PART_BYTES = 256 * 1024;
/** A `Retry-After` is honoured up to this delay. */
export const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;

/** An endpoint as stored (with its secrets): JSON in every store. */
export interface EndpointRecord {
  id: string;
  url: string;
  /** Empty: every type, including types added later. */
  events: string[];
  description: string;
  /** Null while enabled. */
  disabledReason: DisabledReason | null;
  createdAt: number;
  updatedAt: number;
  /** The secret that signs, newest first; then old ones, each until its expiresAt. */
  secret: string;
  oldSecrets: { secret: string; expiresAt: number }[];
  lastSuccessAt: number | null;
  /** The first failed attempt since the last success; null after a success. */
  failingSince: number | null;
}

/** An endpoint as the API shows it: never a secret. */
export interface EndpointView {
  id: string;
  url: string;
  events: string[];
  description: string;
  status: 'enabled' | 'disabled';
  disabledReason: DisabledReason | null;
  createdAt: number;
  updatedAt: number;
  lastSuccessAt: number | null;
  failingSince: number | null;
  /** When each old secret still signing stops. */
  previousSecretsExpireAt: number[];
}

export interface NewEndpoint {
  url: string;
  events?: string[];
  description?: string;
}

export interface EndpointPatch {
  url?: string;
  events?: string[];
  description?: string;
  /** true: enabled again (a disable's reason cleared); false: disabled, reason `manual`. */
  enabled?: boolean;
}

/** An endpoint's id: `ep_` and 32 hex digits (no dots, no braces: it names a queue). */
export function newEndpointId(): string {
  return `ep_${randomUUID().replace(/-/g, '')}`;
}

export const ENDPOINT_ID_PATTERN = /^ep_[0-9a-f]{32}$/;

export function newEndpoint(input: NewEndpoint, now: number): EndpointRecord {
  return {
    id: newEndpointId(),
    url: input.url,
    events: input.events ?? [],
    description: input.description ?? '',
    disabledReason: null,
    createdAt: now,
    updatedAt: now,
    secret: newSecret(),
    oldSecrets: [],
    lastSuccessAt: null,
    failingSince: null,
  };
}

export function patchedEndpoint(
  record: EndpointRecord,
  patch: EndpointPatch,
  now: number,
): EndpointRecord {
  const next = { ...record, updatedAt: now };
  if (patch.url !== undefined) {
    next.url = patch.url;
  }
  if (patch.events !== undefined) {
    next.events = patch.events;
  }
  if (patch.description !== undefined) {
    next.description = patch.description;
  }
  if (patch.enabled === true && record.disabledReason !== null) {
    next.disabledReason = null;
    next.failingSince = null;
  } else if (patch.enabled === false && disablesFor(record, 'manual')) {
    next.disabledReason = 'manual';
  }
  return next;
}

/** The old secrets that still sign at `now`. */
export function liveOldSecrets(record: EndpointRecord, now: number): EndpointRecord['oldSecrets'] {
  return record.oldSecrets.filter((old) => old.expiresAt > now);
}

/** A new current secret; the old one signs beside it for OLD_SECRET_OVERLAP_MS. */
export function rotatedEndpoint(
  record: EndpointRecord,
  now: number,
): EndpointRecord | { refused: 'rotation_limit_reached' } {
  const live = liveOldSecrets(record, now);
  if (live.length >= MAX_OLD_SECRETS) {
    return { refused: 'rotation_limit_reached' };
  }
  return {
    ...record,
    updatedAt: now,
    secret: newSecret(),
    oldSecrets: [{ secret: record.secret, expiresAt: now + OLD_SECRET_OVERLAP_MS }, ...live],
  };
}

/** Every secret that signs an attempt at `now`: the current one first. */
export function signingSecrets(record: EndpointRecord, now: number): string[] {
  return [record.secret, ...liveOldSecrets(record, now).map((old) => old.secret)];
}

/** Whether `pattern` (an entry of an endpoint's events) takes `type`. */
function takes(pattern: string, type: string): boolean {
  if (pattern === '*' || pattern === type) {
    return true;
  }
  return pattern.endsWith('.*') && type.startsWith(pattern.slice(0, -1));
}

/**
 * Whether an endpoint that is disabled (or not) becomes disabled for `reason`: an enabled one
 * does, and one disabled for its backlog (which still sends) does for any other reason, so
 * that a 410, a failing receiver or a PATCH still stops what it sends.
 */
export function disablesFor(record: EndpointRecord, reason: DisabledReason): boolean {
  return (
    record.disabledReason === null || (record.disabledReason === 'backlog' && reason !== 'backlog')
  );
}

/**
 * Whether an endpoint's queued deliveries are sent: enabled, or disabled for its backlog only
 * (it queues nothing new, and what it holds still drains, so that a receiver that comes back
 * gets it and the endpoint can be enabled again without being over its cap at once).
 */
export function sends(record: EndpointRecord): boolean {
  return record.disabledReason === null || record.disabledReason === 'backlog';
}

/** Whether an enabled endpoint queues an event of this type (webhook.test always). */
export function wants(record: EndpointRecord, type: string): boolean {
  if (record.disabledReason !== null) {
    return false;
  }
  return (
    type === 'webhook.test' ||
    record.events.length === 0 ||
    record.events.some((pattern) => takes(pattern, type))
  );
}

export function endpointView(record: EndpointRecord, now: number): EndpointView {
  return {
    id: record.id,
    url: record.url,
    events: record.events,
    description: record.description,
    status: record.disabledReason === null ? 'enabled' : 'disabled',
    disabledReason: record.disabledReason,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    lastSuccessAt: record.lastSuccessAt,
    failingSince: record.failingSince,
    previousSecretsExpireAt: liveOldSecrets(record, now).map((old) => old.expiresAt),
  };
}

/**
 * One event, fixed when queued: every attempt to every endpoint sends `body` as it is, signed
 * with the attempt's time.
 */
export interface WebhookEvent {
  /** The `webhook-id`: stable across retries, re-sends and endpoints. */
  id: string;
  type: WebhookEventType;
  /** When it was queued (ms); the body's `timestamp` in ISO form. */
  at: number;
  /** The exact JSON text sent: `{ id, type, timestamp, data }`. */
  body: string;
}

function compactId(conversationId: string): string {
  return conversationId.replace(/-/g, '');
}

function eventBody(id: string, type: string, at: number, data: string): string {
  return `{"id":${JSON.stringify(id)},"type":"${type}","timestamp":"${new Date(at).toISOString()}","data":${data}}`;
}

/** The event of a change: `evt_<id>_<life>_<seq>` (`…_created` for a creation). */
export function changeEvent(change: TappedChange): WebhookEvent {
  const base = `evt_${compactId(change.conversationId)}_${change.life}`;
  const id = change.type === 'conversation.created' ? `${base}_created` : `${base}_${change.seq}`;
  const data = `{"conversationId":"${change.conversationId}","seq":${change.seq},"change":${change.data}}`;
  return {
    id,
    type: change.type,
    at: change.at,
    body: eventBody(id, change.type, change.at, data),
  };
}

/**
 * The events of an eviction: the transcript in parts of at most TRANSCRIPT_PART_BYTES
 * (`…_transcript_<n>`, n from 1; none for a conversation with no messages), then
 * `conversation.evicted` (`…_evicted`) with the summary and `lastSeq`.
 */
export function evictionEvents(evicted: EvictedConversation, transcript = true): WebhookEvent[] {
  const base = `evt_${compactId(evicted.conversationId)}_${evicted.life}`;
  const { conversationId, lastSeq, at } = evicted;
  const events: WebhookEvent[] = [];
  if (transcript && evicted.messagesJson.length > 0) {
    const groups: string[][] = [[]];
    // Room for the envelope: ids, type, timestamp and the part numbers.
    const room = TRANSCRIPT_PART_BYTES - 512;
    let size = 0;
    for (const message of evicted.messagesJson) {
      const bytes = Buffer.byteLength(message) + 1;
      if (size + bytes > room && groups[groups.length - 1].length > 0) {
        groups.push([]);
        size = 0;
      }
      groups[groups.length - 1].push(message);
      size += bytes;
    }
    groups.forEach((messages, i) => {
      const id = `${base}_transcript_${i + 1}`;
      const data = `{"conversationId":"${conversationId}","seq":${lastSeq},"part":${i + 1},"parts":${groups.length},"messages":[${messages.join(',')}]}`;
      events.push({
        id,
        type: 'conversation.transcript',
        at,
        body: eventBody(id, 'conversation.transcript', at, data),
      });
    });
  }
  const id = `${base}_evicted`;
  const data = `{"conversationId":"${conversationId}","seq":${lastSeq},"change":{"lastSeq":${lastSeq},"conversation":${evicted.summary}}}`;
  events.push({
    id,
    type: 'conversation.evicted',
    at,
    body: eventBody(id, 'conversation.evicted', at, data),
  });
  return events;
}

/** A `webhook.test` event for one endpoint. */
export function testEvent(endpointId: string, now: number): WebhookEvent {
  const id = `evt_test_${randomUUID().replace(/-/g, '')}`;
  const data = `{"endpointId":"${endpointId}","message":"This is a test event."}`;
  return { id, type: 'webhook.test', at: now, body: eventBody(id, 'webhook.test', now, data) };
}

/** One attempt to deliver, as the log shows it. */
export interface DeliveryAttempt {
  at: number;
  /** The answer's status; null when none came (refused address, timeout, reset). */
  statusCode: number | null;
  durationMs: number;
  /** Null on success; else what went wrong (`timeout`, `status 500`, `ECONNREFUSED`, ...). */
  error: string | null;
}

export type DeliveryStatus = 'pending' | 'succeeded' | 'failed';

/** One event's delivery to one endpoint, as the log shows it. */
export interface DeliveryView {
  /** The event's id (the `webhook-id`). */
  id: string;
  type: WebhookEventType;
  status: DeliveryStatus;
  /** When it was queued. */
  createdAt: number;
  /** When the next attempt is due; null unless pending. */
  nextAttemptAt: number | null;
  /** Oldest first. */
  attempts: DeliveryAttempt[];
}

export interface DeliveryQuery {
  status?: DeliveryStatus;
  limit: number;
  /** From a previous page's nextCursor. */
  cursor?: string;
}

/**
 * A log page's cursor, the same in every store: its last entry, `<queued at>:<delivery id>`
 * in base64url.
 */
export function deliveryCursor(at: number, id: string): string {
  return Buffer.from(`${at}:${id}`).toString('base64url');
}

/** The entry a cursor names, or null for text no page gave (the route answers 400). */
export function readDeliveryCursor(cursor: string): { at: number; id: string } | null {
  if (!/^[A-Za-z0-9_-]{1,512}$/.test(cursor)) {
    return null;
  }
  const text = Buffer.from(cursor, 'base64url').toString();
  const match = /^(\d{1,16}):(evt_[A-Za-z0-9_]{1,200})$/.exec(text);
  return match ? { at: Number(match[1]), id: match[2] } : null;
}

export interface DeliveryPage {
  deliveries: DeliveryView[];
  nextCursor: string | null;
}
