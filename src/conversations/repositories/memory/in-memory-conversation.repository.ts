import { StoreError } from '../../../common/errors/store-error';
import { ChangeOutbox, EvictedConversation, TappedChange } from '../../change-outbox';
import { conversationSummaryJson } from '../../dto/conversation.mapper';
import { ActivityIndex } from './activity-index';
import { historyPieces } from '../history-pieces';
import { Watchers } from '../watchers';
import {
  asCreated,
  countersOf,
  customerTokenOf,
  drawLife,
  historyOf,
  InboxRow,
  lastMessageOf,
  newConversation,
  stateOf,
} from '../../records/conversation.codec';
import {
  failsIfMatch,
  patchedState,
  StateField,
  StoredState,
  reopenedBy,
  stateChangeJson,
  StatePatch,
  wokenAt,
} from '../../records/conversation-state';
import {
  AppendedMessage,
  createdAtOfJson,
  messageJsonPrefix,
  senderOfJson,
} from '../../records/message.codec';
import { InboxIndex } from './inbox-index';
import { SnoozeQueue } from './snooze-queue';
import {
  ChangeListener,
  ChangesAfter,
  ConversationHistory,
  ConversationRepository,
  CreatedConversation,
  DeletedMessage,
  HistoryVersion,
  LastRead,
  MessagePage,
  NewConversation,
  NewMessage,
  PageQuery,
  ReadReceipt,
  ReadState,
  StoredCustomerToken,
  StoreStats,
  TypingSignal,
  UnchangedHistory,
  Watch,
  StateUpdate,
  StateUpdated,
  InboxQuery,
  InboxPage,
  InboxCounts,
  InboxListener,
  InboxEvent,
} from '../../conversation.repository';
import {
  bufferedBytes,
  ByteBudget,
  CONVERSATION_OVERHEAD_BYTES,
  DELETED_CHANGE_BYTES,
  KEPT_POST_BYTES,
  letGo,
  messageBytes,
  READ_CHANGE_BYTES,
  stateBytes,
  stateChangeBytes,
} from './byte-budget';
import { forgetKeys, keepPost, keptPost } from './kept-posts';
import {
  BufferedChange,
  ConversationRecord,
  flat,
  IN_HISTORY,
  IN_REPLAY,
  memoryRecord,
  MessageRecord,
  toChange,
} from './memory-records';
import { restoredRecord, snapshotLine } from './snapshot-codec';

/** The types of changes that take a seq, as the outbox names them. */
type TappedType = Exclude<TappedChange['type'], 'conversation.created'>;

/** An evicted conversation as the outbox is told it. */
function evictedConversation(record: ConversationRecord, transcript: boolean): EvictedConversation {
  const now = Date.now();
  return {
    conversationId: record.id,
    life: record.life,
    lastSeq: record.lastSeq,
    summary: conversationSummaryJson(historyOf(record, record.messages.length, null), now),
    messagesJson: transcript ? record.bySeq.map((message) => message.json) : [],
    at: now,
  };
}

function lastReadOf(record: ConversationRecord): LastRead {
  return { customer: record.readCustomer, agent: record.readAgent };
}

/** The kinds of weight the activity index sums for each conversation. */
const MESSAGES = 0;
const BYTES = 1;

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
 * How many of the messages after seq `after` (in seq order) are from `sender`: that side's
 * unread count once the other side has read up to `after`.
 * twin: src/conversations/repositories/redis/scripts/read-5.lua (the counters on a read)
 */
function countAfter(bySeq: MessageRecord[], after: number, sender: 'customer' | 'agent'): number {
  let count = 0;
  for (let i = bySeq.length - 1; i >= 0 && bySeq[i].seq > after; i--) {
    if (senderOfJson(bySeq[i].json) === sender) {
      count++;
    }
  }
  return count;
}

/**
 * The createdAt of the first customer message after the last agent message; 0 when the
 * agent spoke last or nobody spoke (see countersFrom).
 * twin: src/conversations/repositories/redis/scripts/delete-5.lua (the counters on a delete)
 */
function waitingSinceOf(bySeq: MessageRecord[]): number {
  let since = 0;
  for (let i = bySeq.length - 1; i >= 0 && senderOfJson(bySeq[i].json) === 'customer'; i--) {
    since = createdAtOfJson(bySeq[i].json);
  }
  return since;
}

/** A conversation as the inbox shows it: its summary, state and last standing message. */
function rowOf(record: ConversationRecord): InboxRow {
  const last = record.bySeq[record.bySeq.length - 1];
  return {
    id: record.id,
    createdAt: record.createdAt,
    lastActivityAt: record.lastActivityAt,
    messageCount: record.messages.length,
    seq: record.lastSeq,
    state: stateOf(record),
    counters: countersOf(record),
    lastMessage: last ? lastMessageOf(last.json) : null,
  };
}

/**
 * The in-process store. Conversations are kept in an ActivityIndex, so an eviction sweep
 * costs what it evicts, not what is stored.
 */
export class InMemoryConversationRepository extends ConversationRepository {
  readonly kind = 'in-memory';
  private readonly conversations: ActivityIndex<ConversationRecord>;

  private readonly watchers = new Watchers();
  private readonly budget: ByteBudget;
  private readonly inbox = new InboxIndex();
  private readonly snoozes = new SnoozeQueue();
  private readonly feed = new Set<InboxListener>();

  /**
   * @param generationMs width of an activity generation; about TTL / 30 suits eviction.
   * @param replayLimit changes kept per conversation for event replay (EVENT_REPLAY_LIMIT)
   * @param maxBytes the byte budget (MAX_STORE_BYTES): a write past it is refused with
   *   store_full, and nothing stored is touched
   */
  constructor(
    generationMs = DEFAULT_GENERATION_MS,
    private readonly replayLimit = 1_000,
    maxBytes = Infinity,
    /** Told every change applied, in the same step (see change-outbox.ts). */
    readonly outbox: ChangeOutbox = new ChangeOutbox(),
  ) {
    super();
    this.budget = new ByteBudget(maxBytes);
    this.conversations = new ActivityIndex<ConversationRecord>(generationMs, (record) => [
      record.messages.length,
      record.bytes,
    ]);
  }

  /** What the store holds, as the budget counts it. */
  get bytes(): number {
    return this.conversations.weight(BYTES);
  }

  /** The store as lines of JSON, one conversation each (for SNAPSHOT_PATH; see snapshot-codec.ts). */
  *snapshotLines(): IterableIterator<string> {
    for (const record of this.conversations.members()) {
      yield snapshotLine(record);
    }
  }

  /** Puts back one conversation from snapshotLines(). */
  restore(line: string): void {
    const record = restoredRecord(line);
    this.conversations.add(record);
    this.inbox.add(record);
    if (record.status === 'snoozed') {
      this.snoozes.add(record.id, record.snoozedUntil);
    }
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
    // twin: src/conversations/repositories/redis/scripts/create-5.lua (capacity)
    // twin: src/conversations/repositories/redis/scripts/reserve-1.lua (capacity)
    if (this.conversations.size >= input.maxConversations) {
      throw new StoreError('capacity_exceeded');
    }
    const stored = newConversation(input, drawLife());
    const bytes = CONVERSATION_OVERHEAD_BYTES + stateBytes(stored);
    this.refuseOverBudget(bytes);
    const record = memoryRecord(stored, bytes, [], []);
    this.conversations.add(record);
    this.inbox.add(record);
    this.tellInbox('conversation.created', record);
    if (this.outbox.active) {
      void this.outbox.changed([
        {
          conversationId: record.id,
          life: record.life,
          seq: 0,
          type: 'conversation.created',
          data: conversationSummaryJson(historyOf(record, 0, null), record.createdAt),
          at: record.createdAt,
        },
      ]);
    }
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
      const kept = keptPost(record, keyed, input.now);
      if (kept) {
        return AppendedMessage.replayed(kept.message.json);
      }
    }
    if (record.messages.length >= input.maxMessages) {
      throw new StoreError('conversation_full');
    }
    // twin: src/conversations/repositories/redis/scripts/append-7.lua (the seq step)
    const message = AppendedMessage.posted(conversationId, input, record.lastSeq + 1);
    const stored: MessageRecord = {
      timestamp: message.timestamp,
      seq: message.seq,
      json: flat(message.json),
      holders: IN_HISTORY,
    };
    let bytes = messageBytes(stored.json);
    // twin: src/conversations/repositories/redis/scripts/append-7.lua (the reopen by a customer post)
    const reopen = input.sender === 'customer' ? reopenedBy(record) : null;
    // The reopen is part of the post: both fit, or neither is made.
    const reopenBytes = reopen
      ? stateChangeBytes(stateChangeJson(message.seq + 1, ['status', 'snoozedUntil'], record))
      : 0;
    this.refuseOverBudget(bytes + (keyed ? KEPT_POST_BYTES : 0) + reopenBytes, record, input.now);
    record.lastSeq = message.seq;
    const { messages } = record;
    record.bySeq.push(stored);
    if (messages.length === 0 || messages[messages.length - 1].timestamp <= message.timestamp) {
      messages.push(stored);
    } else {
      messages.splice(firstAbove(messages, 'timestamp', message.timestamp), 0, stored);
    }
    if (keyed) {
      bytes += keepPost(record, keyed, input.now, stored);
    }
    bytes -= this.tellChange(record, stored, input.now);
    // twin: src/conversations/repositories/redis/scripts/append-7.lua (the counters on a post)
    if (input.sender === 'customer') {
      record.unreadAgent++;
      record.waitingSince ||= input.now;
    } else {
      record.unreadCustomer++;
      record.waitingSince = 0;
    }
    this.recount(record, input.now, 1, bytes);
    if (reopen) {
      this.applyPatch(record, reopen, input.now);
    }
    this.changed(record);
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
    // twin: src/conversations/repositories/redis/scripts/delete-5.lua (the counters on a delete)
    if (senderOfJson(removed.json) === 'customer') {
      if (removed.seq > record.readAgent) {
        record.unreadAgent--;
      }
    } else if (removed.seq > record.readCustomer) {
      record.unreadCustomer--;
    }
    record.waitingSince = waitingSinceOf(record.bySeq);
    // twin: src/conversations/repositories/redis/scripts/delete-5.lua (the seq step)
    const seq = ++record.lastSeq;
    // Counted on, never refused: what it adds is bounded by the replay buffer.
    const bytes =
      DELETED_CHANGE_BYTES -
      letGo(removed, IN_HISTORY) -
      this.tellChange(record, { seq, deleted: flat(messageId) }, now);
    this.recount(record, now, -1, bytes);
    this.changed(record);
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
    // twin: src/conversations/repositories/redis/scripts/read-5.lua (the read-receipt clamp)
    const { bySeq } = record;
    const below = firstAbove(bySeq, 'seq', receipt.seq) - 1;
    const read = below < 0 ? 0 : bySeq[below].seq;
    if (read <= horizon) {
      return { lastRead: lastReadOf(record) };
    }
    // twin: src/conversations/repositories/redis/scripts/read-5.lua (the counters on a read)
    if (receipt.sender === 'customer') {
      record.readCustomer = read;
      record.unreadCustomer = countAfter(bySeq, read, 'agent');
    } else {
      record.readAgent = read;
      record.unreadAgent = countAfter(bySeq, read, 'customer');
    }
    // twin: src/conversations/repositories/redis/scripts/read-5.lua (the seq step)
    const seq = ++record.lastSeq;
    const bytes =
      READ_CHANGE_BYTES -
      this.tellChange(record, { seq, reader: receipt.sender, horizon: read }, receipt.now);
    this.recount(record, receipt.now, 0, bytes);
    this.changed(record);
    return { lastRead: lastReadOf(record), seq };
  }

  async sendTyping(signal: TypingSignal): Promise<void> {
    this.getRecord(signal.conversationId);
    this.watchers.typing(signal);
  }

  async evictInactive(cutoff: number): Promise<number> {
    const gone: ConversationRecord[] = [];
    const outbox = this.outbox.active ? this.outbox : null;
    const evicted = await this.conversations.evictBefore(cutoff, (record) => {
      record.evicted = true;
      gone.push(record);
      // Told while the record is still at hand: its transcript only if an endpoint takes it.
      void outbox?.evicted([evictedConversation(record, outbox.wantsTranscripts())]);
    });
    this.inbox.pruneEvicted(gone);
    for (const record of gone) {
      this.snoozes.delete(record.id);
      this.tellFeed({ type: 'conversation.evicted', conversationId: record.id });
    }
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
    // twin: src/conversations/repositories/redis/scripts/changesAfter-5.lua (replay completeness)
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

  async updateState(conversationId: string, update: StateUpdate): Promise<StateUpdated> {
    const record = this.getRecord(conversationId);
    if (failsIfMatch(record, update.ifMatch)) {
      return { refused: { code: 'precondition_failed' } };
    }
    const result = patchedState(record, update.patch, update.claim ?? false);
    if ('code' in result) {
      return { refused: result };
    }
    if (result.changed.length === 0) {
      return { conversation: historyOf(record, record.messages.length, null) };
    }
    const seq = this.applyState(record, result, update.now);
    this.changed(record);
    return { conversation: historyOf(record, record.messages.length, null), seq };
  }

  async wakeSnoozed(now: number): Promise<number> {
    let woken = 0;
    for (const id of this.snoozes.due(now)) {
      const record = this.conversations.get(id);
      const wake = record && wokenAt(record, now);
      if (record && wake) {
        this.applyPatch(record, wake, now);
        this.changed(record);
        woken++;
      }
    }
    return woken;
  }

  async list(query: InboxQuery): Promise<InboxPage> {
    const { records, next } = this.inbox.page(query);
    return { rows: records.map(rowOf), next };
  }

  async counts(assignee?: string): Promise<InboxCounts> {
    return this.inbox.counts(assignee);
  }

  /** In effect at once, as watch is. */
  watchInbox(listener: InboxListener): Watch {
    this.feed.add(listener);
    return { ready: Promise.resolve(), stop: () => this.feed.delete(listener) };
  }

  async stats(): Promise<StoreStats> {
    return {
      conversations: this.conversations.size,
      messages: this.conversations.weight(MESSAGES),
      bytes: this.bytes,
      maxBytes: Number.isFinite(this.budget.maxBytes) ? this.budget.maxBytes : undefined,
    };
  }

  /**
   * Puts a change in the replay buffer, the last replayLimit kept, and tells the watchers; the
   * bytes the budget gives back for the entry that left the buffer to make room, if any. The
   * outbox (the webhooks), when one listens, is told it too.
   * twin: src/conversations/repositories/redis/scripts/includes/tellChange.lua (the cut-off)
   */
  private tellChange(record: ConversationRecord, change: BufferedChange, now: number): number {
    if ('json' in change) {
      change.holders |= IN_REPLAY;
    }
    if (this.outbox.active) {
      // In the write's own step, so that a change is queued for the webhooks if it stands.
      const { conversationId, seq, type, data } = toChange(record.id, change);
      void this.outbox.changed([
        { conversationId, life: record.life, seq, type: type as TappedType, data, at: now },
      ]);
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

  /** Applies a change of the conversation's message count and counted bytes, as activity. */
  private recount(record: ConversationRecord, now: number, messages: number, bytes: number): void {
    record.bytes += bytes;
    record.lastActivityAt = Math.max(record.lastActivityAt, now);
    this.conversations.touch(record, now, [messages, bytes]);
  }

  /**
   * Refuses a write of `bytes` more that would pass the budget (store_full), before anything
   * visible changes. A post to a conversation first lets go of its expired keys (which would
   * go with its next keyed post anyway), and of what only they held.
   */
  private refuseOverBudget(bytes: number, record?: ConversationRecord, now = 0): void {
    if (record?.postKeys && this.budget.exceeded(this.bytes + bytes)) {
      // Not activity: the conversation's last activity stays where it is.
      this.recount(record, record.lastActivityAt, 0, -forgetKeys(record.postKeys, now));
    }
    this.budget.refuseOverBudget(this.bytes + bytes);
  }

  /** Applies a reopen or a wake: patches patchedState always accepts (see applyState). */
  private applyPatch(record: ConversationRecord, patch: StatePatch, now: number): number {
    const result = patchedState(record, patch, false);
    if ('code' in result) {
      throw new Error(`a reopen or wake refused: ${result.code}`);
    }
    return this.applyState(record, result, now);
  }

  /**
   * Applies a state change patchedState decided: the next seq, activity, conversation.updated.
   * Refused with store_full, before anything changes, if what it adds would pass the budget.
   * The seq it took.
   */
  private applyState(
    record: ConversationRecord,
    { next, changed }: { next: StoredState; changed: StateField[] },
    now: number,
  ): number {
    const seq = record.lastSeq + 1;
    const data = stateChangeJson(seq, changed, next);
    const grows = stateBytes(next) - stateBytes(record);
    this.refuseOverBudget(Math.max(0, grows) + stateChangeBytes(data));
    Object.assign(record, stateOf(next));
    record.lastSeq = seq;
    record.stateSeq = seq;
    const freed = this.tellChange(record, { seq, updated: data }, now);
    this.recount(record, now, 0, grows + stateChangeBytes(data) - freed);
    if (record.status === 'snoozed') {
      // Idle from its wake on: eviction waits for CONVERSATION_TTL_MS after it.
      this.conversations.touch(record, record.snoozedUntil);
      this.snoozes.add(record.id, record.snoozedUntil);
    }
    return seq;
  }

  /** After a change: the inbox index files the record again, and the feed is told. */
  private changed(record: ConversationRecord): void {
    this.inbox.update(record);
    this.tellInbox('conversation.updated', record);
  }

  private tellInbox(
    type: 'conversation.created' | 'conversation.updated',
    record: ConversationRecord,
  ): void {
    if (this.feed.size > 0) {
      this.tellFeed({ type, row: rowOf(record) });
    }
  }

  private tellFeed(event: InboxEvent): void {
    for (const listener of this.feed) {
      listener.event(event);
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
