import { StoredConversation } from '../../records/conversation.codec';
import { MessageJson } from '../../records/message.codec';
import { ConversationChange, Sender } from '../../conversation.repository';
import type { ConversationStatus } from '../../records/conversation-state';

/**
 * What the inbox index (inbox-index.ts) filed a conversation under: its sort keys and filter
 * values then.
 */
export interface Filed {
  activity: number;
  waiting: number;
  status: ConversationStatus;
  assignee: string;
  team: string;
  externalId: string;
}

/** A stored message, kept small: what ordering needs, and its text, made once. */
export interface MessageRecord {
  readonly timestamp: number;
  readonly seq: number;
  readonly json: MessageJson;
  /**
   * What holds the record (IN_HISTORY, IN_REPLAY, IN_KEPT_POST, or'ed): the byte budget counts
   * it from its post until none does, so a deleted message is counted for as long as the
   * replay buffer or a kept Idempotency-Key still holds its text.
   */
  holders: number;
}

/** The record is one of the conversation's messages (messages and bySeq). */
export const IN_HISTORY = 1;
/** The record is in the replay buffer, as its message.created. */
export const IN_REPLAY = 2;
/** A kept Idempotency-Key answers its retries with the record. */
export const IN_KEPT_POST = 4;

/**
 * An entry of a conversation's replay buffer: the message record itself for a
 * message.created (no copy), the deletion, or the read receipt.
 */
export type BufferedChange =
  | MessageRecord
  | { readonly seq: number; readonly deleted: string }
  | { readonly seq: number; readonly reader: Sender; readonly horizon: number }
  /** A state change: its conversation.updated data (stateChangeJson). */
  | { readonly seq: number; readonly updated: string };

/** A keyed post's result, kept for its retries (see NewMessage.idempotency). */
export interface KeptPost {
  readonly fingerprint: string;
  readonly expiresAt: number;
  /** The message as it was stored: the record itself, not a copy (see IN_KEPT_POST). */
  readonly message: MessageRecord;
}

/**
 * A conversation in memory: its record (StoredConversation), and what the store keeps
 * beside it.
 */
export interface ConversationRecord extends StoredConversation {
  /** Keyed posts by key, oldest first (every key lives equally long); made on the first. */
  postKeys?: Map<string, KeptPost>;
  /**
   * What it holds, as the store's byte budget counts it: its records while anything holds
   * them (see MessageRecord.holders), its kept keys, the replay buffer's other entries.
   */
  bytes: number;
  /** Chronological: ascending timestamp, ties by seq (arrival order). */
  readonly messages: MessageRecord[];
  /** The same records in seq order (arrival order), for pages. */
  readonly bySeq: MessageRecord[];
  /** The last changes, ascending seq, at most the replay limit. */
  readonly changes: BufferedChange[];
  /** When it last became idle, for eviction: the later of its activity and its snooze. */
  idleFrom: number;
  /** What the inbox index filed it under (see InboxIndex); undefined until filed. */
  filed: Filed | undefined;
  /** Evicted: the inbox index drops it. */
  evicted: boolean;
  /** The chunks of the inbox index's sorted lists that hold it (see SortedRecords). */
  activityChunk: ConversationRecord[] | undefined;
  assigneeChunk: ConversationRecord[] | undefined;
  waitingChunk: ConversationRecord[] | undefined;
}

/**
 * Returns the string after making V8 store it as one flat run of characters. Strings built by
 * concatenation (randomUUID(), JSON.stringify) are trees of pieces several times their size
 * (a UUID: ~490 bytes instead of ~64); indexing one flattens it in place, and the next GC
 * drops the pieces. Done once for every string the store keeps.
 */
export function flat<Text extends string>(text: Text): Text {
  void text.at(-1);
  return text;
}

/**
 * The memory record of a conversation: the record's fields, in one literal so that every
 * conversation has the same shape, and the store's own parts.
 */
export function memoryRecord(
  stored: StoredConversation,
  bytes: number,
  bySeq: MessageRecord[],
  messages: MessageRecord[],
): ConversationRecord {
  return {
    id: flat(stored.id),
    createdAt: stored.createdAt,
    lastActivityAt: stored.lastActivityAt,
    lastSeq: stored.lastSeq,
    readCustomer: stored.readCustomer,
    readAgent: stored.readAgent,
    tokenHash: flat(stored.tokenHash),
    tokenAnonymous: stored.tokenAnonymous,
    createKey: stored.createKey,
    life: stored.life,
    status: stored.status,
    snoozedUntil: stored.snoozedUntil,
    assignee: stored.assignee,
    team: stored.team,
    customer: stored.customer,
    metadata: stored.metadata,
    stateSeq: stored.stateSeq,
    unreadCustomer: stored.unreadCustomer,
    unreadAgent: stored.unreadAgent,
    waitingSince: stored.waitingSince,
    bytes,
    messages,
    bySeq,
    changes: [],
    idleFrom: Math.max(stored.lastActivityAt, stored.snoozedUntil),
    filed: undefined,
    evicted: false,
    activityChunk: undefined,
    assigneeChunk: undefined,
    waitingChunk: undefined,
  };
}

/**
 * A replay buffer entry as its event stream tells it.
 * twin: src/conversations/repositories/redis/scripts/delete-5.lua (the change's JSON)
 * twin: src/conversations/repositories/redis/scripts/read-5.lua (the change's JSON)
 */
export function toChange(conversationId: string, change: BufferedChange): ConversationChange {
  if ('json' in change) {
    return { conversationId, seq: change.seq, type: 'message.created', data: change.json };
  }
  if ('deleted' in change) {
    return {
      conversationId,
      seq: change.seq,
      type: 'message.deleted',
      data: JSON.stringify({ messageId: change.deleted, seq: change.seq }),
    };
  }
  if ('updated' in change) {
    return { conversationId, seq: change.seq, type: 'conversation.updated', data: change.updated };
  }
  return {
    conversationId,
    seq: change.seq,
    type: 'conversation.read',
    data: JSON.stringify({ sender: change.reader, seq: change.horizon }),
  };
}
