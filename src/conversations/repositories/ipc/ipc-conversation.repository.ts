import { OnApplicationShutdown } from '@nestjs/common';
import { StoreError } from '../../../common/errors/store-error';
import { AppendedMessage } from '../../records/message.codec';
import {
  ChangeListener,
  ChangesAfter,
  ConversationHistory,
  ConversationRepository,
  CreatedConversation,
  DeletedMessage,
  MessagePage,
  NewConversation,
  NewMessage,
  PageQuery,
  ReadReceipt,
  ReadState,
  StoredCustomerToken,
  StoredMessage,
  StoreStats,
  TypingSignal,
  HistoryVersion,
  UnchangedHistory,
  Watch,
  StateUpdate,
  StateUpdated,
  InboxQuery,
  InboxPage,
  InboxCounts,
  InboxListener,
} from '../../conversation.repository';
import { MessagePort } from '../../../cluster/message-port';
import { HISTORY_CACHE_CHARS, HistoryCache } from '../history-cache';
import { Watchers } from '../watchers';
import { IpcStoreChannel, StoreCallObserver } from './ipc-store-channel';
import {
  isChangeNotice,
  isInboxNotice,
  isTypingNotice,
  STORE_CHANNEL,
  StoreOperation,
  WatchRequest,
} from './store-ipc.protocol';

/**
 * A worker's view of the store the primary owns: every call is forwarded over the cluster
 * IPC channel (an IpcStoreChannel, which batches the calls of one event-loop turn) to the
 * primary's StoreHub, which applies it to the one in-memory repository. A call with no answer
 * within the timeout fails with `store_unavailable`. The worker's IpcRateLimitStore shares
 * the channel (see `channel`).
 */
export class IpcConversationRepository
  extends ConversationRepository
  implements OnApplicationShutdown
{
  /** The in-memory store of the cluster primary, reached over IPC. */
  readonly kind = 'cluster-primary';
  /** The channel to the primary, for the other ports' IPC stores of this worker. */
  readonly channel: IpcStoreChannel;
  private readonly histories: HistoryCache;
  private readonly watchers = new Watchers();
  private readonly feed = new Set<InboxListener>();

  /** @param historyIdleMs a cached history not read for this long is dropped (none: kept) */
  constructor(
    port: MessagePort,
    timeoutMs: number,
    observe?: StoreCallObserver,
    historyIdleMs = Infinity,
  ) {
    super();
    this.histories = new HistoryCache(HISTORY_CACHE_CHARS, historyIdleMs);
    this.channel = new IpcStoreChannel(port, timeoutMs, observe);
    this.channel.onNotice((message) => this.onNotice(message));
    // The primary is gone: watchers are told of a gap, and their reads fail.
    this.channel.onClose(() => {
      this.watchers.gap();
      this.feed.forEach((listener) => listener.gap());
    });
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
      ? await this.getConversationIfChanged(conversationId, cached)
      : await this.call<ConversationHistory | null>('getConversation', [conversationId]);
    if (!history) {
      this.histories.delete(conversationId);
      return null;
    }
    if (history.messagesJson === null) {
      return { ...history, messagesJson: cached?.pieces ?? [] };
    }
    this.histories.set(conversationId, history, history.messagesJson);
    return history;
  }

  getConversationIfChanged(
    conversationId: string,
    known: HistoryVersion,
  ): Promise<ConversationHistory | UnchangedHistory | null> {
    // Only the two numbers cross the channel, not the cached pieces beside them.
    return this.call('getConversationIfChanged', [
      conversationId,
      { life: known.life, version: known.version },
    ]);
  }

  /** The answer crosses as the message's fields (see StoreReply); its text is made here. */
  appendMessage(conversationId: string, input: NewMessage): Promise<AppendedMessage> {
    return this.call<StoredMessage & { replayed?: true }>('appendMessage', [
      conversationId,
      input,
    ]).then((fields) => AppendedMessage.fromFields(fields));
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

  customerToken(conversationId: string): Promise<StoredCustomerToken | null> {
    return this.call('customerToken', [conversationId]);
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
    if (this.channel.closed) {
      return { ready: Promise.reject(new StoreError('store_unavailable')), stop: () => undefined };
    }
    const tell = (request: WatchRequest) => {
      try {
        this.channel.send(request);
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

  updateState(conversationId: string, update: StateUpdate): Promise<StateUpdated> {
    return this.call('updateState', [conversationId, update]);
  }

  wakeSnoozed(now: number): Promise<number> {
    return this.call('wakeSnoozed', [now]);
  }

  list(query: InboxQuery): Promise<InboxPage> {
    return this.call('list', [query]);
  }

  counts(assignee?: string): Promise<InboxCounts> {
    return this.call('counts', assignee === undefined ? [] : [assignee]);
  }

  /**
   * The primary sends this worker every inbox event once the first listener is added, in
   * effect at once as watch is; when the channel closes, listeners are told of a gap.
   */
  watchInbox(listener: InboxListener): Watch {
    if (this.channel.closed) {
      return { ready: Promise.reject(new StoreError('store_unavailable')), stop: () => undefined };
    }
    if (this.feed.size === 0) {
      this.tell({ ch: STORE_CHANNEL, inbox: true });
    }
    this.feed.add(listener);
    const stop = () => {
      if (this.feed.delete(listener) && this.feed.size === 0) {
        this.tell({ ch: STORE_CHANNEL, inbox: false });
      }
    };
    return { ready: Promise.resolve(), stop };
  }

  private tell(request: WatchRequest): void {
    try {
      this.channel.send(request);
    } catch {
      // The primary is gone: the channel's close tells the listeners.
    }
  }

  onApplicationShutdown(): void {
    this.close();
  }

  /**
   * Fails every pending and future call, and tells every watcher of a gap (its read then
   * fails, and an event stream ends): the primary is gone.
   */
  close(): void {
    this.channel.close();
  }

  private call<T>(op: StoreOperation<'conversations'>, args: unknown[]): Promise<T> {
    return this.channel.call('conversations', op, args);
  }

  private onNotice(message: unknown): void {
    if (isChangeNotice(message)) {
      this.watchers.emit(message.change);
    } else if (isTypingNotice(message)) {
      this.watchers.typing(message.typing);
    } else if (isInboxNotice(message)) {
      this.feed.forEach((listener) => listener.event(message.inboxEvent));
    }
  }
}
