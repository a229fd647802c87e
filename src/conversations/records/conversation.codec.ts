import { randomInt } from 'node:crypto';
import { MessageJson, Sender } from './message.codec';
import {
  canonicalCustomer,
  ConversationStatus,
  CustomerDetails,
  initialState,
  Metadata,
  STATUSES,
  StoredCounters,
  StoredState,
} from './conversation-state';

/** What a store keeps of a customer token, with its conversation. */
export interface StoredCustomerToken {
  /** The token's SHA-256, base64url (hashToken). */
  hash: string;
  /**
   * Minted by a create without an API key (PUBLIC_CONVERSATIONS, or open mode): its requests
   * and event streams also count against the address using it (see access.service.ts). A
   * record kept before this mark existed reads as anonymous: the mark can only tighten limits,
   * so the unknown case takes the tighter one.
   */
  anonymous: boolean;
}

/** How far each side has read: the highest seq it reported (0: nothing yet). */
export interface LastRead {
  customer: number;
  agent: number;
}

/**
 * Which state of a conversation's messages a copy was taken at. `version` is the
 * conversation's last seq, which changes whenever the messages do; `life` tells apart the
 * conversations one id has named: a keyed create derives its id from the key, so after an
 * eviction the same create makes the same id again, and its seqs start over. A copy of
 * `messagesJson` taken at one HistoryVersion is exact for as long as both numbers stay.
 */
export interface HistoryVersion {
  /**
   * Differs between a conversation and any earlier one with its id: every store draws 47
   * random bits per create (drawLife; two lives of one id share it with odds of 1 in 10^14),
   * and a snapshot keeps it.
   */
  life: number;
  version: number;
}

/** What a store answers of a conversation's record (a create's answer, a history's header). */
export interface ConversationSummary {
  id: string;
  createdAt: number;
  lastActivityAt: number;
  messageCount: number;
}

/** A history without its messages: what a read answers of the conversation's record. */
export interface ConversationHeader extends ConversationSummary, HistoryVersion {
  lastRead: LastRead;
  /** Its inbox state as stored (a due snooze still reads `snoozed` here: see statusAt). */
  state: StoredState;
  counters: StoredCounters;
}

/** The last standing message of a conversation, as an inbox row shows it. */
export interface LastMessage {
  sender: Sender;
  seq: number;
  /** Its first LAST_MESSAGE_CHARS code points. */
  content: string;
}

/** How much of the last message's content an inbox row carries, in code points. */
export const LAST_MESSAGE_CHARS = 200;

/** A conversation as the inbox list and feed show it (see ConversationRepository.list). */
export interface InboxRow extends ConversationSummary {
  /** Its last seq. */
  seq: number;
  state: StoredState;
  counters: StoredCounters;
  lastMessage: LastMessage | null;
}

/**
 * A conversation's record as every store keeps it: its own fields, without its messages,
 * their orders, its replay buffer or its kept Idempotency-Keys (each store keeps those its
 * own way). Its forms in each store are in CONVERSATION_FIELDS.
 */
export interface StoredConversation extends StoredState, StoredCounters {
  readonly id: string;
  readonly createdAt: number;
  lastActivityAt: number;
  /** The seq the last change took (HistoryVersion.version). */
  lastSeq: number;
  /** The read horizons (see ConversationRepository.markRead). */
  readCustomer: number;
  readAgent: number;
  /** The customer token's hash; empty without one (or in a snapshot from before tokens). */
  tokenHash: string;
  /** Its token was minted without an API key (StoredCustomerToken.anonymous). */
  tokenAnonymous: boolean;
  /** The fingerprint of the keyed create that made it; empty when made without a key. */
  readonly createKey: string;
  /** Which create made it (HistoryVersion.life). */
  readonly life: number;
}

/**
 * Each field of the record, and its form in each store where the forms differ: `redis` is
 * its field in the conversation's hash (`{<id>}:conv`, see redis-keys.ts), `snapshot` its key
 * in a snapshot line (SnapshotLine). The in-memory store keeps the record's own fields, and a
 * worker receives the answers built here (ConversationSummary, ConversationHeader) as they
 * are, over the IPC channel. The Lua scripts that read or write the hash name this table.
 *
 * Adding a field: StoredConversation, this table, newConversation and the encoders below
 * (snapshotLineOf, conversationFromSnapshot, redisHashOf; headerOf and headerFromRedis if
 * it is answered), then the memory record (memoryRecord) and, if answered, the DTO.
 */
export const CONVERSATION_FIELDS = {
  /** Redis: the hash tag of every key of the conversation, not a field. */
  id: { redis: null, snapshot: 'id' },
  createdAt: { redis: 'c', snapshot: 'createdAt' },
  lastActivityAt: { redis: 'a', snapshot: 'lastActivityAt' },
  lastSeq: { redis: 's', snapshot: 'lastSeq' },
  /** Memory: its messages' number; snapshot: its messages'. */
  messageCount: { redis: 'n', snapshot: null },
  /** Absent (in records from before read receipts): 0. Snapshot: lastRead[0]. */
  readCustomer: { redis: 'rc', snapshot: 'lastRead' },
  /** Absent: 0. Snapshot: lastRead[1]. */
  readAgent: { redis: 'ra', snapshot: 'lastRead' },
  tokenHash: { redis: 't', snapshot: 'tokenHash' },
  /**
   * Redis: `k` an API key, `a` anyone else; snapshot: 'api-key' or 'anonymous'. Absent (in
   * records from before the mark): anonymous.
   */
  tokenAnonymous: { redis: 'tm', snapshot: 'tokenMintedBy' },
  /** Snapshot: absent when empty. */
  createKey: { redis: 'k', snapshot: 'createKey' },
  /**
   * Redis: absent (made before lives were kept) reads as 0. Snapshot: absent in files written
   * before lives were kept there; a restore then draws one.
   */
  life: { redis: 'l', snapshot: 'life' },
  /** Absent (in records from before the inbox): open, and the rest none or 0. */
  status: { redis: 'st', snapshot: 'status' },
  snoozedUntil: { redis: 'su', snapshot: 'snoozedUntil' },
  assignee: { redis: 'as', snapshot: 'assignee' },
  team: { redis: 'te', snapshot: 'team' },
  /** Redis: its compact JSON. */
  customer: { redis: 'cu', snapshot: 'customer' },
  /** Redis: its compact JSON. */
  metadata: { redis: 'md', snapshot: 'metadata' },
  stateSeq: { redis: 'ss', snapshot: 'stateSeq' },
  /** Snapshot: none, counted again from the messages on restore (countersFrom). */
  unreadCustomer: { redis: 'uc', snapshot: null },
  unreadAgent: { redis: 'ua', snapshot: null },
  waitingSince: { redis: 'ws', snapshot: null },
} as const satisfies Record<
  keyof StoredConversation | 'messageCount',
  { redis: string | null; snapshot: string | null }
>;

const F = CONVERSATION_FIELDS;

/**
 * A new conversation's life (see HistoryVersion): 47 random bits, in every store, so that two
 * lives of one id share it with odds of 1 in 10^14, across restarts too.
 */
export const drawLife = (): number => randomInt(2 ** 47);

/** Whether a stored life is one drawLife could have made. */
const isLife = (value: unknown): value is number =>
  Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) < 2 ** 47;

/** What a create may set of the state (its optional body). */
export interface InitialState {
  status?: 'open' | 'pending';
  assignee?: string;
  team?: string;
  customer?: CustomerDetails;
  metadata?: Metadata;
}

/** What a create gives of its conversation (NewConversation's own fields). */
export interface ConversationDraft {
  id: string;
  now: number;
  customerToken?: StoredCustomerToken;
  idempotency?: { fingerprint: string };
  initial?: InitialState;
}

/** The record a create makes. */
export function newConversation(draft: ConversationDraft, life: number): StoredConversation {
  return {
    id: draft.id,
    createdAt: draft.now,
    lastActivityAt: draft.now,
    lastSeq: 0,
    readCustomer: 0,
    readAgent: 0,
    tokenHash: draft.customerToken?.hash ?? '',
    tokenAnonymous: draft.customerToken?.anonymous ?? true,
    createKey: draft.idempotency?.fingerprint ?? '',
    life,
    ...initialState(),
    status: draft.initial?.status ?? 'open',
    assignee: draft.initial?.assignee ?? '',
    team: draft.initial?.team ?? '',
    customer: canonicalCustomer(draft.initial?.customer ?? {}),
    metadata: draft.initial?.metadata ?? {},
    unreadCustomer: 0,
    unreadAgent: 0,
    waitingSince: 0,
  };
}

/** The record's state fields, as answers carry them (a copy). */
export function stateOf(record: StoredState): StoredState {
  return {
    status: record.status,
    snoozedUntil: record.snoozedUntil,
    assignee: record.assignee,
    team: record.team,
    customer: record.customer,
    metadata: record.metadata,
    stateSeq: record.stateSeq,
  };
}

export function countersOf(record: StoredCounters): StoredCounters {
  return {
    unreadCustomer: record.unreadCustomer,
    unreadAgent: record.unreadAgent,
    waitingSince: record.waitingSince,
  };
}

/** A create's answer, the same for the attempt that made it and every retry. */
export function asCreated(
  record: StoredConversation,
  createdAt = record.createdAt,
): ConversationSummary {
  return { id: record.id, createdAt, lastActivityAt: createdAt, messageCount: 0 };
}

/** A read's answer: the record's header, with `messagesJson` as given. */
export function historyOf<Messages>(
  record: StoredConversation,
  messageCount: number,
  messagesJson: Messages,
): ConversationHeader & { messagesJson: Messages } {
  return {
    id: record.id,
    createdAt: record.createdAt,
    lastActivityAt: record.lastActivityAt,
    messageCount,
    lastRead: { customer: record.readCustomer, agent: record.readAgent },
    life: record.life,
    version: record.lastSeq,
    state: stateOf(record),
    counters: countersOf(record),
    messagesJson,
  };
}

export function customerTokenOf(record: StoredConversation): StoredCustomerToken | null {
  return record.tokenHash ? { hash: record.tokenHash, anonymous: record.tokenAnonymous } : null;
}

/**
 * One conversation in a snapshot file (SNAPSHOT_PATH), one JSON line each. Fields were only
 * ever added: a line from an older build lacks some, and reads with their defaults.
 */
export interface SnapshotLine {
  id: string;
  createdAt: number;
  createKey?: string;
  /** [key, fingerprint, expiresAt, its message's text], oldest first. */
  postKeys?: [string, string, number, MessageJson][];
  tokenHash?: string;
  tokenMintedBy?: 'api-key' | 'anonymous';
  lastActivityAt: number;
  lastSeq: number;
  /** [customer, agent] read horizons. */
  lastRead?: [number, number];
  /** HistoryVersion.life; absent in files from before it was kept. */
  life?: number;
  /** The inbox state; absent in files from before the inbox (open, unassigned). */
  status?: ConversationStatus;
  snoozedUntil?: number;
  assignee?: string;
  team?: string;
  customer?: CustomerDetails;
  metadata?: Metadata;
  stateSeq?: number;
  /** [timestamp, seq, text], ascending seq. */
  messages: [number, number, MessageJson][];
}

export function snapshotLineOf(
  record: StoredConversation,
  messages: SnapshotLine['messages'],
  postKeys: SnapshotLine['postKeys'],
): SnapshotLine {
  return {
    id: record.id,
    createdAt: record.createdAt,
    tokenHash: record.tokenHash,
    tokenMintedBy: record.tokenAnonymous ? 'anonymous' : 'api-key',
    lastActivityAt: record.lastActivityAt,
    lastSeq: record.lastSeq,
    lastRead: [record.readCustomer, record.readAgent],
    life: record.life,
    status: record.status,
    snoozedUntil: record.snoozedUntil,
    assignee: record.assignee,
    team: record.team,
    customer: record.customer,
    metadata: record.metadata,
    stateSeq: record.stateSeq,
    messages,
    ...(record.createKey ? { createKey: record.createKey } : {}),
    ...(postKeys ? { postKeys } : {}),
  };
}

export function conversationFromSnapshot(line: SnapshotLine): StoredConversation {
  return {
    id: line.id,
    createdAt: line.createdAt,
    lastActivityAt: line.lastActivityAt,
    lastSeq: line.lastSeq,
    readCustomer: line.lastRead?.[0] ?? 0,
    readAgent: line.lastRead?.[1] ?? 0,
    tokenHash: line.tokenHash ?? '',
    tokenAnonymous: line.tokenMintedBy !== 'api-key',
    createKey: line.createKey ?? '',
    life: isLife(line.life) ? line.life : drawLife(),
    status: STATUSES.includes(line.status as ConversationStatus)
      ? (line.status as ConversationStatus)
      : 'open',
    snoozedUntil: line.status === 'snoozed' ? (line.snoozedUntil ?? 0) : 0,
    assignee: line.assignee ?? '',
    team: line.team ?? '',
    customer: line.customer ?? {},
    metadata: line.metadata ?? {},
    stateSeq: line.stateSeq ?? 0,
    // Counted from the messages by the store that restores it (countersFrom).
    unreadCustomer: 0,
    unreadAgent: 0,
    waitingSince: 0,
  };
}

/**
 * The counters of a conversation from its standing messages in seq order (sender, seq and
 * createdAt each) and its read horizons: what every post, delete and read keeps up one step
 * at a time, counted whole (a restore, a backfill, a delete's waitingSince).
 * twin: src/conversations/repositories/redis/scripts/includes/countersFrom.lua (a record from before the inbox)
 */
export function countersFrom(
  bySeq: readonly { sender: Sender; seq: number; createdAt: number }[],
  lastRead: LastRead,
): StoredCounters {
  let unreadCustomer = 0;
  let unreadAgent = 0;
  let waitingSince = 0;
  for (const message of bySeq) {
    if (message.sender === 'customer') {
      if (message.seq > lastRead.agent) {
        unreadAgent++;
      }
      if (waitingSince === 0) {
        waitingSince = message.createdAt;
      }
    } else {
      if (message.seq > lastRead.customer) {
        unreadCustomer++;
      }
      waitingSince = 0;
    }
  }
  return { unreadCustomer, unreadAgent, waitingSince };
}

/** The hash's `tm`: who minted the customer token (see StoredCustomerToken). */
const TOKEN_BY_API_KEY = 'k';
const TOKEN_ANONYMOUS = 'a';

/** The record as the fields and values of the conversation's hash (HSET's arguments). */
export function redisHashOf(record: StoredConversation, messageCount: number): (string | number)[] {
  return [
    F.createdAt.redis,
    record.createdAt,
    F.lastActivityAt.redis,
    record.lastActivityAt,
    F.lastSeq.redis,
    record.lastSeq,
    F.messageCount.redis,
    messageCount,
    F.tokenHash.redis,
    record.tokenHash,
    F.tokenAnonymous.redis,
    record.tokenAnonymous ? TOKEN_ANONYMOUS : TOKEN_BY_API_KEY,
    F.createKey.redis,
    record.createKey,
    F.life.redis,
    record.life,
    // Not written at create: absent reads as 0.
    ...(record.readCustomer ? [F.readCustomer.redis, record.readCustomer] : []),
    ...(record.readAgent ? [F.readAgent.redis, record.readAgent] : []),
    ...redisStateOf(record),
    F.stateSeq.redis,
    record.stateSeq,
    F.unreadCustomer.redis,
    record.unreadCustomer,
    F.unreadAgent.redis,
    record.unreadAgent,
    F.waitingSince.redis,
    record.waitingSince,
    // Counted in the inbox counts by the create's second step (see markCounted-1.lua).
    REDIS_COUNTED_MARK,
    1,
  ];
}

/** The hash's mark of a record the inbox counts hold (absent in records from before them). */
export const REDIS_COUNTED_MARK = 'ic';

/**
 * The state's fields as HSET takes them (no `ss`): what create-5.lua and update-5.lua write.
 * `su` goes with a snooze only (update-5.lua removes it otherwise); customer and metadata are
 * their compact JSON, as stateChangeJson writes them.
 */
export function redisStateOf(state: StoredState): (string | number)[] {
  return [
    F.status.redis,
    state.status,
    ...(state.snoozedUntil ? [F.snoozedUntil.redis, state.snoozedUntil] : []),
    F.assignee.redis,
    state.assignee,
    F.team.redis,
    state.team,
    F.customer.redis,
    JSON.stringify(state.customer),
    F.metadata.redis,
    JSON.stringify(state.metadata),
  ];
}

/** The customer token's hash and mark, as create-5.lua puts them in place on a retry. */
export function redisTokenOf(record: StoredConversation): [hash: string, mark: string] {
  return [record.tokenHash, record.tokenAnonymous ? TOKEN_ANONYMOUS : TOKEN_BY_API_KEY];
}

/**
 * The hash fields a read asks for (HMGET), in the order headerFromRedis reads them: `s` and
 * `l` first, which get-5.lua compares with the caller's HistoryVersion.
 */
export const REDIS_HEADER_FIELDS = [
  F.lastSeq.redis,
  F.life.redis,
  F.createdAt.redis,
  F.lastActivityAt.redis,
  F.messageCount.redis,
  F.readCustomer.redis,
  F.readAgent.redis,
  F.status.redis,
  F.snoozedUntil.redis,
  F.assignee.redis,
  F.team.redis,
  F.customer.redis,
  F.metadata.redis,
  F.stateSeq.redis,
  F.unreadCustomer.redis,
  F.unreadAgent.redis,
  F.waitingSince.redis,
];

/** A read's answer from the values of REDIS_HEADER_FIELDS; null when there is no record. */
export function headerFromRedis<Messages>(
  id: string,
  values: (string | null)[],
  messagesJson: Messages,
): (ConversationHeader & { messagesJson: Messages }) | null {
  const header = redisHeader(id, values);
  return header && { ...header, messagesJson };
}

/**
 * A history read of a record from before the inbox (no `ws` among its values: its first write
 * or the sweep's backfill counts it) gets its counters from its messages, so that they are
 * exact before that; any other history as it is.
 */
export function withOldCounters<History extends ConversationHeader & { messagesJson: string[] }>(
  history: History,
  values: (string | null)[],
): History {
  if (values[REDIS_HEADER_FIELDS.indexOf(F.waitingSince.redis)] !== null) {
    return history;
  }
  const messages = JSON.parse(history.messagesJson.join('')) as {
    sender: Sender;
    seq: number;
    createdAt: number;
  }[];
  history.counters = countersFrom(
    messages.sort((a, b) => a.seq - b.seq),
    history.lastRead,
  );
  return history;
}

/** The record's header from the values of REDIS_HEADER_FIELDS; null when there is no record. */
export function redisHeader(id: string, values: (string | null)[]): ConversationHeader | null {
  const [lastSeq, life, createdAt, lastActivityAt, messageCount, readCustomer, readAgent] = values;
  if (lastSeq === null) {
    return null;
  }
  return {
    id,
    createdAt: Number(createdAt),
    lastActivityAt: Number(lastActivityAt),
    messageCount: Number(messageCount),
    lastRead: { customer: Number(readCustomer ?? 0), agent: Number(readAgent ?? 0) },
    life: Number(life ?? 0),
    version: Number(lastSeq),
    state: stateFromRedis(values.slice(7, 14)),
    counters: {
      unreadCustomer: Number(values[14] ?? 0),
      unreadAgent: Number(values[15] ?? 0),
      waitingSince: Number(values[16] ?? 0),
    },
  };
}

/**
 * The state from the values of `st su as te cu md ss` (REDIS_HEADER_FIELDS from the 8th):
 * absent fields (records from before the inbox) read as open, unassigned, no customer.
 */
export function stateFromRedis([
  status,
  snoozedUntil,
  assignee,
  team,
  customer,
  metadata,
  stateSeq,
]: (string | null)[]): StoredState {
  const known = STATUSES.includes(status as ConversationStatus);
  return {
    status: known ? (status as ConversationStatus) : 'open',
    snoozedUntil: known && status === 'snoozed' ? Number(snoozedUntil ?? 0) : 0,
    assignee: assignee ?? '',
    team: team ?? '',
    customer: customer ? (JSON.parse(customer) as CustomerDetails) : {},
    metadata: metadata ? (JSON.parse(metadata) as Metadata) : {},
    stateSeq: Number(stateSeq ?? 0),
  };
}

/**
 * The last message as an inbox row shows it, from its MessageJson: its content cut to
 * LAST_MESSAGE_CHARS code points (never half a surrogate pair). Every store's rows use it.
 */
export function lastMessageOf(json: string): LastMessage {
  const message = JSON.parse(json) as { sender: Sender; seq: number; content: string };
  return { sender: message.sender, seq: message.seq, content: cutToCodePoints(message.content) };
}

/** The first LAST_MESSAGE_CHARS code points of `text`. */
export function cutToCodePoints(text: string, max = LAST_MESSAGE_CHARS): string {
  if (text.length <= max) {
    return text;
  }
  let points = 0;
  let end = 0;
  while (end < text.length && points < max) {
    const code = text.charCodeAt(end);
    end += code >= 0xd800 && code <= 0xdbff && end + 1 < text.length ? 2 : 1;
    points++;
  }
  return text.slice(0, end);
}

/** The hash fields customerTokenFromRedis reads (HMGET). */
export const REDIS_TOKEN_FIELDS = [F.tokenHash.redis, F.tokenAnonymous.redis];

export function customerTokenFromRedis([hash, mark]: (
  string | null
)[]): StoredCustomerToken | null {
  return hash ? { hash, anonymous: mark !== TOKEN_BY_API_KEY } : null;
}
