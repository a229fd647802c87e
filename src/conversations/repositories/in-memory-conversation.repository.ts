import { StoreError } from '../conversation.errors';
import { ActivityIndex } from './activity-index';
import { historyPieces } from './history-pieces';
import { IdempotencyKeys } from './idempotency-keys';
import { HitCounters } from './hit-counters';
import { Watchers } from './watchers';
import {
  ChangeListener,
  ChangesAfter,
  ConversationChange,
  ConversationHistory,
  ConversationRepository,
  ConversationSummary,
  DeletedMessage,
  HitCount,
  KeptResponse,
  KeyClaim,
  MessagePage,
  NewConversation,
  NewMessage,
  PageQuery,
  StoredMessage,
  StoreStats,
  UnchangedHistory,
  Watch,
} from '../conversation.repository';

/** A stored message, kept small: what ordering needs, and its JSON, made once. */
interface MessageRecord {
  readonly timestamp: number;
  readonly seq: number;
  /** The StoredMessage as JSON, `id` first (see idPrefix). */
  readonly json: string;
}

/**
 * An entry of a conversation's replay buffer: the message record itself for a
 * message.created (no copy), or the deletion.
 */
type BufferedChange = MessageRecord | { readonly seq: number; readonly deleted: string };

interface ConversationRecord {
  readonly id: string;
  readonly createdAt: number;
  /** The customer token's hash; empty for a conversation restored from an older snapshot. */
  tokenHash: string;
  lastActivityAt: number;
  lastSeq: number;
  /** Chronological: ascending timestamp, ties by seq (arrival order). */
  readonly messages: MessageRecord[];
  /** The same records in seq order (arrival order), for pages. */
  readonly bySeq: MessageRecord[];
  /** The last changes, ascending seq, at most the replay limit. */
  readonly changes: BufferedChange[];
}

interface SnapshotLine {
  id: string;
  createdAt: number;
  tokenHash?: string;
  lastActivityAt: number;
  lastSeq: number;
  /** [timestamp, seq, JSON], ascending seq. */
  messages: [number, number, string][];
}

/** How a message's JSON begins: StoredMessage literals below always put `id` first. */
const idPrefix = (messageId: string) => `{"id":${JSON.stringify(messageId)},`;

/**
 * Returns the string after making V8 store it as one flat run of characters. Strings built by
 * concatenation (randomUUID(), JSON.stringify) are trees of pieces several times their size
 * (a UUID: ~490 bytes instead of ~64); indexing one flattens it in place, and the next GC
 * drops the pieces. Done once for every string the store keeps.
 */
function flat(text: string): string {
  void text.at(-1);
  return text;
}

function toChange(conversationId: string, change: BufferedChange): ConversationChange {
  return 'json' in change
    ? { conversationId, seq: change.seq, type: 'message.created', data: change.json }
    : {
        conversationId,
        seq: change.seq,
        type: 'message.deleted',
        data: JSON.stringify({ messageId: change.deleted, seq: change.seq }),
      };
}

/** Default width of an activity generation (see ActivityIndex). */
const DEFAULT_GENERATION_MS = 60_000;

function summarize(record: ConversationRecord): ConversationSummary {
  return {
    id: record.id,
    createdAt: record.createdAt,
    lastActivityAt: record.lastActivityAt,
    messageCount: record.messages.length,
  };
}

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
  private readonly keys = new IdempotencyKeys();
  private readonly hits = new HitCounters();

  /**
   * @param generationMs width of an activity generation; about TTL / 30 suits eviction.
   * @param replayLimit changes kept per conversation for event replay (EVENT_REPLAY_LIMIT)
   */
  constructor(
    generationMs = DEFAULT_GENERATION_MS,
    private readonly replayLimit = 1_000,
  ) {
    super();
    this.conversations = new ActivityIndex(generationMs, (record) => record.messages.length);
  }

  /**
   * The store as lines of JSON, one conversation each (for SNAPSHOT_PATH). Replay buffers
   * and Idempotency-Keys are not kept: after a restart a reconnecting stream gets `reset`.
   */
  *snapshotLines(): IterableIterator<string> {
    for (const record of this.conversations.members()) {
      yield JSON.stringify({
        id: record.id,
        createdAt: record.createdAt,
        tokenHash: record.tokenHash,
        lastActivityAt: record.lastActivityAt,
        lastSeq: record.lastSeq,
        messages: record.bySeq.map((m) => [m.timestamp, m.seq, m.json]),
      } satisfies SnapshotLine);
    }
  }

  /** Puts back one conversation from snapshotLines(). */
  restore(line: string): void {
    const saved = JSON.parse(line) as SnapshotLine;
    const bySeq = saved.messages.map(([timestamp, seq, json]) => ({
      timestamp,
      seq,
      json: flat(json),
    }));
    const record: ConversationRecord = {
      id: flat(saved.id),
      createdAt: saved.createdAt,
      tokenHash: flat(saved.tokenHash ?? ''),
      lastActivityAt: saved.lastActivityAt,
      lastSeq: saved.lastSeq,
      bySeq,
      messages: [...bySeq].sort((a, b) => a.timestamp - b.timestamp || a.seq - b.seq),
      changes: [],
    };
    this.conversations.add(record);
  }

  async createConversation(input: NewConversation): Promise<ConversationSummary> {
    if (this.conversations.size >= input.maxConversations) {
      throw new StoreError('capacity_exceeded');
    }
    const record: ConversationRecord = {
      id: flat(input.id),
      createdAt: input.now,
      tokenHash: flat(input.customerTokenHash ?? ''),
      lastActivityAt: input.now,
      lastSeq: 0,
      messages: [],
      bySeq: [],
      changes: [],
    };
    this.conversations.add(record);
    return summarize(record);
  }

  async getConversation(conversationId: string): Promise<ConversationHistory | null> {
    const record = this.conversations.get(conversationId);
    if (!record) {
      return null;
    }
    return {
      ...summarize(record),
      version: record.lastSeq,
      messagesJson: historyPieces(record.messages.length, (i) => record.messages[i].json),
    };
  }

  async getConversationIfChanged(
    conversationId: string,
    knownVersion: number,
  ): Promise<ConversationHistory | UnchangedHistory | null> {
    const record = this.conversations.get(conversationId);
    if (record?.lastSeq === knownVersion) {
      return { ...summarize(record), version: knownVersion, messagesJson: null };
    }
    return this.getConversation(conversationId);
  }

  async appendMessage(conversationId: string, input: NewMessage): Promise<StoredMessage> {
    const record = this.getRecord(conversationId);
    if (record.messages.length >= input.maxMessages) {
      throw new StoreError('conversation_full');
    }
    const message: StoredMessage = {
      id: input.id,
      conversationId,
      sender: input.sender,
      content: input.content,
      timestamp: input.timestamp,
      seq: ++record.lastSeq,
      createdAt: input.now,
    };
    const stored: MessageRecord = {
      timestamp: message.timestamp,
      seq: message.seq,
      json: flat(JSON.stringify(message)),
    };
    const { messages } = record;
    record.bySeq.push(stored);
    if (messages.length === 0 || messages[messages.length - 1].timestamp <= message.timestamp) {
      messages.push(stored);
    } else {
      messages.splice(firstAbove(messages, 'timestamp', message.timestamp), 0, stored);
    }
    this.conversations.touch(record, input.now, 1);
    this.changed(record, stored);
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
    const prefix = idPrefix(messageId);
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
    this.conversations.touch(record, now, -1);
    this.changed(record, { seq, deleted: messageId });
    return { messageId, seq };
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

  async claimKey(key: string, fingerprint: string, pendingMs: number): Promise<KeyClaim> {
    return this.keys.claim(key, fingerprint, pendingMs);
  }

  async completeKey(
    key: string,
    fingerprint: string,
    response: KeptResponse,
    ttlMs: number,
  ): Promise<void> {
    this.keys.complete(key, fingerprint, response, ttlMs);
  }

  async releaseKey(key: string, fingerprint: string): Promise<void> {
    this.keys.release(key, fingerprint);
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

  async customerTokenHash(conversationId: string): Promise<string | null> {
    return this.conversations.get(conversationId)?.tokenHash || null;
  }

  async replaceCustomerTokenHash(conversationId: string, hash: string): Promise<boolean> {
    const record = this.conversations.get(conversationId);
    if (record) {
      record.tokenHash = flat(hash);
    }
    return record !== undefined;
  }

  async countHit(key: string, windowMs: number, limit: number, blockMs: number): Promise<HitCount> {
    return this.hits.hit(key, windowMs, limit, blockMs);
  }

  /** In effect at once: every write is applied here, after the watch is added. */
  watch(conversationId: string, listener: ChangeListener): Watch {
    return { ready: Promise.resolve(), stop: this.watchers.add(conversationId, listener) };
  }

  async stats(): Promise<StoreStats> {
    return { conversations: this.conversations.size, messages: this.conversations.weight };
  }

  private changed(record: ConversationRecord, change: BufferedChange): void {
    record.changes.push(change);
    if (record.changes.length > this.replayLimit) {
      record.changes.shift();
    }
    if (this.watchers.has(record.id)) {
      this.watchers.emit(toChange(record.id, change));
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
