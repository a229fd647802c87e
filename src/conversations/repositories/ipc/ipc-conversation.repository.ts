import { OnApplicationShutdown } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { StoreError } from '../../conversation.errors';
import {
  AppendedMessage,
  ChangeListener,
  ChangesAfter,
  ConversationHistory,
  ConversationRepository,
  CreatedConversation,
  DeletedMessage,
  HitCount,
  MessagePage,
  NewConversation,
  NewMessage,
  PageQuery,
  ReadReceipt,
  ReadState,
  StoreStats,
  TypingSignal,
  UnchangedHistory,
  Watch,
} from '../../conversation.repository';
import { MessagePort } from '../../../common/message-port';
import { HistoryCache } from '../history-cache';
import { Watchers } from '../watchers';
import {
  isChangeNotice,
  isReplyBatch,
  isReplyPart,
  isTypingNotice,
  STORE_CHANNEL,
  StoreCall,
  StoreOperation,
  StoreReply,
  WatchRequest,
} from './store-ipc.protocol';

interface Pending {
  op: StoreOperation;
  /** performance.now() when the call was made. */
  startedAt: number;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** Told of every call once it is settled: answered (`ok`), refused or failed. */
export type StoreCallObserver = (op: StoreOperation, ok: boolean, seconds: number) => void;

/**
 * Batches sent and not yet answered. Calls made while this many are out wait for an answer
 * and then leave together: under load the batches grow instead of the primary's message
 * rate, and with no load a call leaves at once.
 */
const MAX_BATCHES_IN_FLIGHT = 2;

/** Characters of histories a worker keeps copies of (see HistoryCache): 16 M, 16–64 MB. */
const HISTORY_CACHE_CHARS = 16 * 1024 * 1024;

/**
 * A worker's view of the store the primary owns: every call is forwarded over the cluster
 * IPC channel to the primary's StoreHub, which applies it to the one in-memory repository.
 * Calls made in one event-loop turn, or while earlier batches are still out, go as one
 * batch. A call with no answer within the timeout fails with `store_unavailable`.
 */
export class IpcConversationRepository
  extends ConversationRepository
  implements OnApplicationShutdown
{
  /** The in-memory store of the cluster primary, reached over IPC. */
  readonly kind = 'cluster-primary';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly histories = new HistoryCache(HISTORY_CACHE_CHARS);
  private readonly watchers = new Watchers();
  /** Leading history pieces received ahead of their call's answer (see StoreReplyPart). */
  private readonly parts = new Map<number, string[]>();
  /** Each batch in flight, by the id of its first call (replies keep the calls' order). */
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private queue: StoreCall[] = [];
  private flushScheduled = false;
  private batchesInFlight = 0;
  private closed = false;
  private readonly unsubscribe: (() => void)[];

  constructor(
    private readonly port: MessagePort,
    private readonly timeoutMs: number,
    private readonly observe: StoreCallObserver = () => undefined,
  ) {
    super();
    this.unsubscribe = [
      port.onMessage((message) => this.onMessage(message)),
      port.onClose(() => this.close()),
    ];
  }

  createConversation(input: NewConversation): Promise<CreatedConversation> {
    return this.call('createConversation', [input]);
  }

  /**
   * A history this worker served before is asked for only if it changed since: the primary
   * confirms the version and sends the messages only when they are new, so a read of a long,
   * unchanged history costs the primary a small answer instead of the whole text.
   */
  async getConversation(conversationId: string): Promise<ConversationHistory | null> {
    const cached = this.histories.get(conversationId);
    const history = cached
      ? await this.getConversationIfChanged(conversationId, cached.version)
      : await this.call<ConversationHistory | null>('getConversation', [conversationId]);
    if (!history) {
      this.histories.delete(conversationId);
      return null;
    }
    if (history.messagesJson === null) {
      return { ...history, messagesJson: cached?.pieces ?? [] };
    }
    this.histories.set(conversationId, history.version, history.messagesJson);
    return history;
  }

  getConversationIfChanged(
    conversationId: string,
    knownVersion: number,
  ): Promise<ConversationHistory | UnchangedHistory | null> {
    return this.call('getConversationIfChanged', [conversationId, knownVersion]);
  }

  appendMessage(conversationId: string, input: NewMessage): Promise<AppendedMessage> {
    return this.call('appendMessage', [conversationId, input]);
  }

  deleteMessage(conversationId: string, messageId: string, now: number): Promise<DeletedMessage> {
    return this.call('deleteMessage', [conversationId, messageId, now]);
  }

  markRead(conversationId: string, receipt: ReadReceipt): Promise<ReadState> {
    return this.call('markRead', [conversationId, receipt]);
  }

  /** The primary tells the workers that watch the conversation, this one included. */
  sendTyping(signal: TypingSignal): Promise<void> {
    return this.call('sendTyping', [signal]);
  }

  evictInactive(cutoff: number): Promise<number> {
    return this.call('evictInactive', [cutoff]);
  }

  stats(): Promise<StoreStats> {
    return this.call('stats', []);
  }

  getPage(conversationId: string, query: PageQuery): Promise<MessagePage | null> {
    return this.call('getPage', [conversationId, query]);
  }

  changesAfter(conversationId: string, afterSeq: number): Promise<ChangesAfter | null> {
    return this.call('changesAfter', [conversationId, afterSeq]);
  }

  customerTokenHash(conversationId: string): Promise<string | null> {
    return this.call('customerTokenHash', [conversationId]);
  }

  countHit(key: string, windowMs: number, limit: number, blockMs: number): Promise<HitCount> {
    return this.call('countHit', [key, windowMs, limit, blockMs]);
  }

  /**
   * The primary sends this worker the changes of the conversations it watches. Ready at once,
   * with no answer to wait for: the watch message is sent now, while a call made after it
   * (the stream's changesAfter) is only queued and leaves with a later batch (flush, on
   * setImmediate or later still). The IPC channel keeps order, and the StoreHub applies a
   * watch on arrival, synchronously, to a store that applies each write synchronously; so
   * every write applied after any call this worker makes from now on is told to it, and the
   * others are in that call's answer. When the channel closes, watchers are told of a gap
   * (see close) and their reads fail.
   */
  watch(conversationId: string, listener: ChangeListener): Watch {
    if (this.closed) {
      return { ready: Promise.reject(new StoreError('store_unavailable')), stop: () => undefined };
    }
    const tell = (request: WatchRequest) => {
      try {
        this.port.send(request);
      } catch {
        // The primary is gone: the channel's close tells the watchers.
      }
    };
    const stop = this.watchers.add(
      conversationId,
      listener,
      () => tell({ ch: STORE_CHANNEL, watch: conversationId }),
      () => tell({ ch: STORE_CHANNEL, unwatch: conversationId }),
    );
    return { ready: Promise.resolve(), stop };
  }

  onApplicationShutdown(): void {
    this.close();
  }

  /**
   * Fails every pending and future call, and tells every watcher of a gap (its read then
   * fails, and an event stream ends): the primary is gone.
   */
  close(): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.unsubscribe.forEach((unsubscribe) => unsubscribe());
    this.timers.forEach((timer) => clearTimeout(timer));
    this.timers.clear();
    this.queue = [];
    this.failAll([...this.pending.keys()]);
    this.watchers.gap();
  }

  private call<T>(op: StoreOperation, args: unknown[]): Promise<T> {
    if (this.closed) {
      return Promise.reject(new StoreError('store_unavailable'));
    }
    const id = this.nextId++;
    const result = new Promise<T>((resolve, reject) => {
      this.pending.set(id, {
        op,
        startedAt: performance.now(),
        resolve: resolve as (value: unknown) => void,
        reject,
      });
    });
    this.queue.push({ id, op, args });
    this.scheduleFlush();
    return result;
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled && this.queue.length > 0) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.batchesInFlight >= MAX_BATCHES_IN_FLIGHT || this.closed) {
      return; // the next answer (or its timeout) sends what has queued up
    }
    const calls = this.queue;
    this.queue = [];
    try {
      this.port.send({ ch: STORE_CHANNEL, calls });
    } catch {
      this.failAll(calls.map((call) => call.id));
      return;
    }
    this.batchesInFlight++;
    // One timer per batch rather than per call; the batch is answered as a whole.
    const timer = setTimeout(() => this.onTimeout(), this.timeoutMs);
    timer.unref();
    this.timers.set(calls[0].id, timer);
  }

  /**
   * A batch went unanswered: the primary is stuck or gone, so everything waiting fails now
   * rather than each call serving out its own wait behind it.
   */
  private onTimeout(): void {
    this.timers.forEach((timer) => clearTimeout(timer));
    this.timers.clear();
    this.queue = [];
    this.batchesInFlight = 0;
    this.failAll([...this.pending.keys()]);
  }

  private batchDone(): void {
    this.batchesInFlight--;
    this.scheduleFlush();
  }

  private onMessage(message: unknown): void {
    if (isChangeNotice(message)) {
      this.watchers.emit(message.change);
      return;
    }
    if (isTypingNotice(message)) {
      this.watchers.typing(message.typing);
      return;
    }
    if (isReplyPart(message)) {
      const { id, messagesJson } = message.part;
      if (!this.pending.has(id)) {
        return; // its call has failed already
      }
      const received = this.parts.get(id);
      this.parts.set(id, received ? received.concat(messagesJson) : messagesJson);
      return;
    }
    if (!isReplyBatch(message) || message.replies.length === 0) {
      return;
    }
    const timer = this.timers.get(message.replies[0].id);
    if (timer === undefined) {
      return; // timed out already: batchDone has run
    }
    clearTimeout(timer);
    this.timers.delete(message.replies[0].id);
    for (const reply of message.replies) {
      this.settle(reply);
    }
    this.batchDone();
  }

  private settle(reply: StoreReply): void {
    const leading = this.parts.get(reply.id);
    this.parts.delete(reply.id);
    const pending = this.pending.get(reply.id);
    if (!pending) {
      return; // timed out already
    }
    this.pending.delete(reply.id);
    this.observe(pending.op, reply.ok, (performance.now() - pending.startedAt) / 1000);
    if (reply.ok) {
      if (leading) {
        const history = reply.result as ConversationHistory;
        history.messagesJson = leading.concat(history.messagesJson);
      }
      pending.resolve(reply.result);
    } else {
      pending.reject(new StoreError(reply.code));
    }
  }

  private failAll(ids: number[]): void {
    for (const id of ids) {
      this.settle({ id, ok: false, code: 'store_unavailable' });
    }
  }
}
