import { Logger } from '@nestjs/common';
import { StoreError } from '../../conversation.errors';
import { ActivityIndex } from './activity-index';
import { historyPieces } from '../history-pieces';
import { Watchers } from '../watchers';
import {
  asCreated,
  conversationFromSnapshot,
  customerTokenOf,
  historyOf,
  newConversation,
  SnapshotLine,
  snapshotLineOf,
  StoredConversation,
} from '../../records/conversation.codec';
import {
  AppendedMessage,
  keptMessageJson,
  MessageJson,
  messageJsonPrefix,
} from '../../records/message.codec';
import {
  ChangeListener,
  ChangesAfter,
  ConversationChange,
  ConversationHistory,
  ConversationRepository,
  CreatedConversation,
  DeletedMessage,
  HistoryVersion,
  IdempotentWrite,
  LastRead,
  MessagePage,
  NewConversation,
  NewMessage,
  PageQuery,
  ReadReceipt,
  ReadState,
  Sender,
  StoredCustomerToken,
  StoreStats,
  TypingSignal,
  UnchangedHistory,
  Watch,
} from '../../conversation.repository';

/** A stored message, kept small: what ordering needs, and its text, made once. */
interface MessageRecord {
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
const IN_HISTORY = 1;
/** The record is in the replay buffer, as its message.created. */
const IN_REPLAY = 2;
/** A kept Idempotency-Key answers its retries with the record. */
const IN_KEPT_POST = 4;

/**
 * An entry of a conversation's replay buffer: the message record itself for a
 * message.created (no copy), the deletion, or the read receipt.
 */
type BufferedChange =
  | MessageRecord
  | { readonly seq: number; readonly deleted: string }
  | { readonly seq: number; readonly reader: Sender; readonly horizon: number };

/** A keyed post's result, kept for its retries (see NewMessage.idempotency). */
interface KeptPost {
  readonly fingerprint: string;
  readonly expiresAt: number;
  /** The message as it was stored: the record itself, not a copy (see IN_KEPT_POST). */
  readonly message: MessageRecord;
}

/**
 * A conversation in memory: its record (StoredConversation; `life` counts the store's creates
 * and restores, never the same for two), and what the store keeps beside it.
 */
interface ConversationRecord extends StoredConversation {
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
}

/**
 * Returns the string after making V8 store it as one flat run of characters. Strings built by
 * concatenation (randomUUID(), JSON.stringify) are trees of pieces several times their size
 * (a UUID: ~490 bytes instead of ~64); indexing one flattens it in place, and the next GC
 * drops the pieces. Done once for every string the store keeps.
 */
function flat<Text extends string>(text: Text): Text {
  void text.at(-1);
  return text;
}

function toChange(conversationId: string, change: BufferedChange): ConversationChange {
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
  return {
    conversationId,
    seq: change.seq,
    type: 'conversation.read',
    data: JSON.stringify({ sender: change.reader, seq: change.horizon }),
  };
}

/**
 * The memory record of a conversation: the record's fields, in one literal so that every
 * conversation has the same shape, and the store's own parts.
 */
function memoryRecord(
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
    bytes,
    messages,
    bySeq,
    changes: [],
  };
}

function lastReadOf(record: ConversationRecord): LastRead {
  return { customer: record.readCustomer, agent: record.readAgent };
}

/**
 * Keyed posts remembered per conversation at most; past it the oldest key goes first. Ten
 * thousand is the default MAX_MESSAGES_PER_CONVERSATION: only a conversation whose messages
 * are deleted and posted again, all with keys, within the key's lifetime reaches it.
 */
const MAX_POST_KEYS = 10_000;

/**
 * What the byte budget (MAX_STORE_BYTES) counts, beyond the text itself: the heap a stored
 * message costs besides its JSON string (its record, its places in the two orders and the
 * replay buffer), a conversation with no message (its token's hash and a create's key
 * included), a kept Idempotency-Key (its digests and entry; the message it answers with is
 * counted as a record, see IN_KEPT_POST), and a deletion's or a read receipt's entry in the
 * replay buffer. Measured by `npm run bench` (the budget against the heap it actually takes;
 * see the README) and in-memory-conversation.repository.spec.ts.
 */
export const MESSAGE_OVERHEAD_BYTES = 120;
export const CONVERSATION_OVERHEAD_BYTES = 400;
const KEPT_POST_BYTES = 240;
const DELETED_CHANGE_BYTES = 112;
const READ_CHANGE_BYTES = 64;

/**
 * A stored string's heap bytes: V8 keeps a string with no character above U+00FF one byte a
 * character, any other two.
 */
function stringBytes(text: string): number {
  // eslint-disable-next-line no-control-regex
  return /[^\u0000-\u00ff]/.test(text) ? 2 * text.length : text.length;
}

/** The kinds of weight the activity index sums for each conversation. */
const MESSAGES = 0;
const BYTES = 1;

/** A stored message as the byte budget counts it. */
function messageBytes(json: string): number {
  return MESSAGE_OVERHEAD_BYTES + stringBytes(json);
}

/** Takes `holder` off the record; the bytes the budget gives back (none while another holds it). */
function letGo(message: MessageRecord, holder: number): number {
  message.holders &= ~holder;
  return message.holders === 0 ? messageBytes(message.json) : 0;
}

/** Forgets a kept Idempotency-Key; the bytes the budget gives back. */
function dropKey(keys: Map<string, KeptPost>, key: string, kept: KeptPost): number {
  keys.delete(key);
  return KEPT_POST_BYTES + letGo(kept.message, IN_KEPT_POST);
}

/**
 * Forgets the kept keys that have expired, and the oldest while `below` or more are kept; the
 * bytes the budget gives back.
 */
function forgetKeys(keys: Map<string, KeptPost>, now: number, below = Infinity): number {
  let freed = 0;
  // Every key lives equally long, so the expired ones are at the front.
  for (const [key, kept] of keys) {
    if (kept.expiresAt > now && keys.size < below) {
      break;
    }
    freed += dropKey(keys, key, kept);
  }
  return freed;
}

/** A replay buffer entry as the byte budget counts it, once it leaves the buffer. */
function bufferedBytes(change: BufferedChange): number {
  if ('json' in change) {
    return letGo(change, IN_REPLAY);
  }
  return 'deleted' in change ? DELETED_CHANGE_BYTES : READ_CHANGE_BYTES;
}

/** Default width of an activity generation (see ActivityIndex). */
const DEFAULT_GENERATION_MS = 60_000;

/**
 * Index of the first record whose `field` is above `value`, in records sorted by it: where a
 * record with that value goes after its equals (messages by timestamp), or where the records
 * after a seq begin (bySeq).
 */
function firstAbove(records: MessageRecord[], field: 'timestamp' | 'seq', value: number): number {
  let low = 0;
  let high = records.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (records[mid][field] <= value) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  return low;
}

/**
 * The in-process store. Conversations are kept in an ActivityIndex, so an eviction sweep
 * costs what it evicts, not what is stored.
 */
export class InMemoryConversationRepository extends ConversationRepository {
  readonly kind = 'in-memory';
  private readonly conversations: ActivityIndex<ConversationRecord>;

  private readonly watchers = new Watchers();
  private readonly logger = new Logger('Store');
  /** Past 90% of the budget a warning is logged, once until it falls below 80% again. */
  private warnedFull = false;
  /** Conversations made so far, created or restored: the last one's life. */
  private lives = 0;

  /**
   * @param generationMs width of an activity generation; about TTL / 30 suits eviction.
   * @param replayLimit changes kept per conversation for event replay (EVENT_REPLAY_LIMIT)
   * @param maxBytes the byte budget (MAX_STORE_BYTES): a write past it is refused with
   *   store_full, and nothing stored is touched
   */
  constructor(
    generationMs = DEFAULT_GENERATION_MS,
    private readonly replayLimit = 1_000,
    private readonly maxBytes = Infinity,
  ) {
    super();
    this.conversations = new ActivityIndex(generationMs, (record) => [
      record.messages.length,
      record.bytes,
    ]);
  }

  /** What the store holds, as the budget counts it. */
  get bytes(): number {
    return this.conversations.weight(BYTES);
  }

  /**
   * The store as lines of JSON, one conversation each (for SNAPSHOT_PATH), with their
   * Idempotency-Keys. Replay buffers are not kept: after a restart a reconnecting stream gets
   * `reset`.
   */
  *snapshotLines(): IterableIterator<string> {
    for (const record of this.conversations.members()) {
      yield JSON.stringify(
        snapshotLineOf(
          record,
          record.bySeq.map((m) => [m.timestamp, m.seq, m.json]),
          record.postKeys &&
            [...record.postKeys].map(([key, kept]) => [
              key,
              kept.fingerprint,
              kept.expiresAt,
              kept.message.json,
            ]),
        ),
      );
    }
  }

  /** Puts back one conversation from snapshotLines(). */
  restore(line: string): void {
    const saved = JSON.parse(line) as SnapshotLine;
    const bySeq = saved.messages.map(([timestamp, seq, json]): MessageRecord => ({
      timestamp,
      seq,
      json: flat(keptMessageJson(json)),
      holders: IN_HISTORY,
    }));
    const record = memoryRecord(
      conversationFromSnapshot(saved, ++this.lives),
      // Counted, but never refused: a restart loses nothing, and writes wait for room.
      CONVERSATION_OVERHEAD_BYTES +
        bySeq.reduce((sum, message) => sum + messageBytes(message.json), 0),
      bySeq,
      [...bySeq].sort((a, b) => a.timestamp - b.timestamp || a.seq - b.seq),
    );
    if (saved.postKeys) {
      // A key answers with its message's record when the message is still there, else with
      // a record of its own, counted like one.
      const byJson = new Map(bySeq.map((message) => [message.json, message]));
      record.postKeys = new Map(
        saved.postKeys.map(([key, fingerprint, expiresAt, json]) => {
          let message = byJson.get(json);
          if (!message) {
            message = { timestamp: 0, seq: 0, json: flat(keptMessageJson(json)), holders: 0 };
            record.bytes += messageBytes(message.json);
          }
          message.holders |= IN_KEPT_POST;
          record.bytes += KEPT_POST_BYTES;
          return [key, { fingerprint, expiresAt, message }];
        }),
      );
    }
    this.conversations.add(record);
  }

  async createConversation(input: NewConversation): Promise<CreatedConversation> {
    if (input.idempotency) {
      // The id comes from the key: a conversation with it was made by an earlier attempt.
      const existing = this.conversations.get(input.id);
      if (existing) {
        if (existing.createKey !== input.idempotency.fingerprint) {
          throw new StoreError('idempotency_key_reused');
        }
        existing.tokenHash = flat(input.customerToken?.hash ?? '');
        existing.tokenAnonymous = input.customerToken?.anonymous ?? true;
        return { ...asCreated(existing), replayed: true };
      }
    }
    if (this.conversations.size >= input.maxConversations) {
      throw new StoreError('capacity_exceeded');
    }
    this.makeRoom(CONVERSATION_OVERHEAD_BYTES);
    const record = memoryRecord(
      newConversation(input, ++this.lives),
      CONVERSATION_OVERHEAD_BYTES,
      [],
      [],
    );
    this.conversations.add(record);
    return asCreated(record);
  }

  async getConversation(conversationId: string): Promise<ConversationHistory | null> {
    const record = this.conversations.get(conversationId);
    if (!record) {
      return null;
    }
    const { messages } = record;
    return historyOf(
      record,
      messages.length,
      historyPieces(messages.length, (i) => messages[i].json),
    );
  }

  async getConversationIfChanged(
    conversationId: string,
    known: HistoryVersion,
  ): Promise<ConversationHistory | UnchangedHistory | null> {
    const record = this.conversations.get(conversationId);
    if (record && record.lastSeq === known.version && record.life === known.life) {
      return historyOf(record, record.messages.length, null);
    }
    return this.getConversation(conversationId);
  }

  async appendMessage(conversationId: string, input: NewMessage): Promise<AppendedMessage> {
    const record = this.getRecord(conversationId);
    const keyed = input.idempotency;
    if (keyed) {
      // Before the limits: a retry gets what the first attempt stored, whatever happened since.
      const kept = this.keptPost(record, keyed, input.now);
      if (kept) {
        return AppendedMessage.replayed(kept.message.json);
      }
    }
    if (record.messages.length >= input.maxMessages) {
      throw new StoreError('conversation_full');
    }
    const message = AppendedMessage.posted(conversationId, input, record.lastSeq + 1);
    const stored: MessageRecord = {
      timestamp: message.timestamp,
      seq: message.seq,
      json: flat(message.json),
      holders: IN_HISTORY,
    };
    let bytes = messageBytes(stored.json);
    this.makeRoom(bytes + (keyed ? KEPT_POST_BYTES : 0), record, input.now);
    record.lastSeq = message.seq;
    const { messages } = record;
    record.bySeq.push(stored);
    if (messages.length === 0 || messages[messages.length - 1].timestamp <= message.timestamp) {
      messages.push(stored);
    } else {
      messages.splice(firstAbove(messages, 'timestamp', message.timestamp), 0, stored);
    }
    if (keyed) {
      bytes += this.keepPost(record, keyed, input.now, stored);
    }
    bytes -= this.changed(record, stored);
    this.recount(record, input.now, 1, bytes);
    return message;
  }

  async deleteMessage(
    conversationId: string,
    messageId: string,
    now: number,
  ): Promise<DeletedMessage> {
    const record = this.getRecord(conversationId);
    const { messages } = record;
    // Scanned from the newest: deletes mostly concern recent messages, and the scan is
    // bounded by MAX_MESSAGES_PER_CONVERSATION. An id index would cost memory on every message.
    const prefix = messageJsonPrefix(messageId);
    let index = messages.length - 1;
    while (index >= 0 && !messages[index].json.startsWith(prefix)) {
      index--;
    }
    if (index < 0) {
      throw new StoreError('message_not_found');
    }
    const [removed] = messages.splice(index, 1);
    record.bySeq.splice(firstAbove(record.bySeq, 'seq', removed.seq - 1), 1);
    const seq = ++record.lastSeq;
    // Counted on, never refused: what it adds is bounded by the replay buffer.
    const bytes =
      DELETED_CHANGE_BYTES -
      letGo(removed, IN_HISTORY) -
      this.changed(record, { seq, deleted: flat(messageId) });
    this.recount(record, now, -1, bytes);
    return { messageId, seq };
  }

  async markRead(conversationId: string, receipt: ReadReceipt): Promise<ReadState> {
    const record = this.getRecord(conversationId);
    if (receipt.seq > record.lastSeq) {
      throw new StoreError('seq_beyond_last');
    }
    const horizon = receipt.sender === 'customer' ? record.readCustomer : record.readAgent;
    if (receipt.seq <= horizon) {
      return { lastRead: lastReadOf(record) };
    }
    // Down to the last standing message at or below it (see ConversationRepository.markRead).
    const { bySeq } = record;
    const below = firstAbove(bySeq, 'seq', receipt.seq) - 1;
    const read = below < 0 ? 0 : bySeq[below].seq;
    if (read <= horizon) {
      return { lastRead: lastReadOf(record) };
    }
    if (receipt.sender === 'customer') {
      record.readCustomer = read;
    } else {
      record.readAgent = read;
    }
    const seq = ++record.lastSeq;
    const bytes =
      READ_CHANGE_BYTES - this.changed(record, { seq, reader: receipt.sender, horizon: read });
    this.recount(record, receipt.now, 0, bytes);
    return { lastRead: lastReadOf(record), seq };
  }

  async sendTyping(signal: TypingSignal): Promise<void> {
    this.getRecord(signal.conversationId);
    this.watchers.typing(signal);
  }

  async evictInactive(cutoff: number): Promise<number> {
    const evicted = await this.conversations.evictBefore(cutoff);
    // Whole generations go without a look at their members: ask only about the watched.
    for (const conversationId of this.watchers.conversations()) {
      if (!this.conversations.get(conversationId)) {
        this.watchers.emit({ conversationId, seq: 0, type: 'conversation.evicted', data: '{}' });
      }
    }
    return evicted;
  }

  async getPage(conversationId: string, query: PageQuery): Promise<MessagePage | null> {
    const record = this.conversations.get(conversationId);
    if (!record) {
      return null;
    }
    const { bySeq } = record;
    let start: number;
    let end: number;
    let hasMore: boolean;
    if (query.after !== undefined) {
      start = firstAbove(bySeq, 'seq', query.after);
      end = Math.min(start + query.limit, bySeq.length);
      hasMore = end < bySeq.length;
    } else {
      end = query.before !== undefined ? firstAbove(bySeq, 'seq', query.before - 1) : bySeq.length;
      start = Math.max(0, end - query.limit);
      hasMore = start > 0;
    }
    const page = bySeq.slice(start, end);
    return { messagesJson: `[${page.map((m) => m.json).join(',')}]`, hasMore };
  }

  async changesAfter(conversationId: string, afterSeq: number): Promise<ChangesAfter | null> {
    const record = this.conversations.get(conversationId);
    if (!record) {
      return null;
    }
    const { changes, lastSeq } = record;
    if (afterSeq >= lastSeq) {
      return { lastSeq, complete: true, changes: [] };
    }
    // Every seq from 1 to lastSeq is one change, so the buffer reaches back far enough when
    // it holds afterSeq + 1.
    const oldest = changes.length > 0 ? changes[0].seq : lastSeq + 1;
    if (oldest > afterSeq + 1) {
      return { lastSeq, complete: false, changes: [] };
    }
    return {
      lastSeq,
      complete: true,
      changes: changes
        .slice(afterSeq + 1 - oldest)
        .map((change) => toChange(conversationId, change)),
    };
  }

  async customerToken(conversationId: string): Promise<StoredCustomerToken | null> {
    const record = this.conversations.get(conversationId);
    return record ? customerTokenOf(record) : null;
  }

  /** In effect at once: every write is applied here, after the watch is added. */
  watch(conversationId: string, listener: ChangeListener): Watch {
    return { ready: Promise.resolve(), stop: this.watchers.add(conversationId, listener) };
  }

  async stats(): Promise<StoreStats> {
    return {
      conversations: this.conversations.size,
      messages: this.conversations.weight(MESSAGES),
      bytes: this.bytes,
      maxBytes: Number.isFinite(this.maxBytes) ? this.maxBytes : undefined,
    };
  }

  /**
   * Puts a change in the replay buffer and tells the watchers; the bytes the budget gives
   * back for the entry that left the buffer to make room, if any.
   */
  private changed(record: ConversationRecord, change: BufferedChange): number {
    if ('json' in change) {
      change.holders |= IN_REPLAY;
    }
    record.changes.push(change);
    const freed =
      record.changes.length > this.replayLimit
        ? bufferedBytes(record.changes.shift() as BufferedChange)
        : 0;
    if (this.watchers.has(record.id)) {
      this.watchers.emit(toChange(record.id, change));
    }
    return freed;
  }

  /** The kept result of a keyed post, if it is a retry; refuses a key reused for another. */
  private keptPost(
    record: ConversationRecord,
    keyed: IdempotentWrite,
    now: number,
  ): KeptPost | undefined {
    const kept = record.postKeys?.get(keyed.key);
    if (!kept || kept.expiresAt <= now) {
      return undefined;
    }
    if (kept.fingerprint !== keyed.fingerprint) {
      throw new StoreError('idempotency_key_reused');
    }
    return kept;
  }

  /**
   * Keeps a keyed post's result, and lets go of the keys that have expired; the change in
   * the bytes the budget counts for the conversation's keys and what they alone held.
   */
  private keepPost(
    record: ConversationRecord,
    keyed: IdempotentWrite,
    now: number,
    message: MessageRecord,
  ): number {
    const keys = (record.postKeys ??= new Map());
    let bytes = KEPT_POST_BYTES - forgetKeys(keys, now, MAX_POST_KEYS);
    // An expired entry under the same key: re-inserted at the back.
    const expired = keys.get(keyed.key);
    if (expired) {
      bytes -= dropKey(keys, keyed.key, expired);
    }
    message.holders |= IN_KEPT_POST;
    keys.set(flat(keyed.key), {
      fingerprint: flat(keyed.fingerprint),
      expiresAt: now + keyed.ttlMs,
      message,
    });
    return bytes;
  }

  /** Applies a change of the conversation's message count and counted bytes, as activity. */
  private recount(record: ConversationRecord, now: number, messages: number, bytes: number): void {
    record.bytes += bytes;
    this.conversations.touch(record, now, [messages, bytes]);
  }

  /**
   * Refuses a write of `bytes` more that would pass the budget (store_full), before anything
   * visible changes; warns once when the store passes 90% of it. A post to a conversation
   * first lets go of its expired keys (which would go with its next keyed post anyway), and
   * of what only they held.
   */
  private makeRoom(bytes: number, record?: ConversationRecord, now = 0): void {
    if (record?.postKeys && this.bytes + bytes > this.maxBytes) {
      // Not activity: the conversation's last activity stays where it is.
      this.recount(record, record.lastActivityAt, 0, -forgetKeys(record.postKeys, now));
    }
    const after = this.bytes + bytes;
    if (after > this.maxBytes) {
      throw new StoreError('store_full');
    }
    if (!this.warnedFull && after > 0.9 * this.maxBytes) {
      this.warnedFull = true;
      this.logger.warn(
        `The store holds ${after} bytes, over 90% of MAX_STORE_BYTES (${this.maxBytes}): writes are refused with 507 past it`,
      );
    } else if (this.warnedFull && after < 0.8 * this.maxBytes) {
      this.warnedFull = false;
    }
  }

  private getRecord(conversationId: string): ConversationRecord {
    const record = this.conversations.get(conversationId);
    if (!record) {
      throw new StoreError('conversation_not_found');
    }
    return record;
  }
}
