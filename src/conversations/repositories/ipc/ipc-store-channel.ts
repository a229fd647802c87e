import { performance } from 'node:perf_hooks';
import { MessagePort } from '../../../cluster/message-port';
import { StoreError } from '../../../common/errors/store-error';
import { ConversationHistory } from '../../conversation.repository';
import {
  isReplyBatch,
  isReplyPart,
  STORE_CHANNEL,
  StoreCall,
  StoreOperation,
  StorePort,
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

/**
 * A worker's one channel to the primary's StoreHub, shared by its IPC stores (conversations
 * and rate limits), so that the calls of every port made in one event-loop turn, or while
 * earlier batches are still out, go as one batch. A batch with no answer within the timeout
 * fails everything waiting with `store_unavailable`; so does the channel's close.
 */
export class IpcStoreChannel {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Leading history pieces received ahead of their call's answer (see StoreReplyPart). */
  private readonly parts = new Map<number, string[]>();
  /** Each batch in flight, by the id of its first call (replies keep the calls' order). */
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private queue: StoreCall[] = [];
  private flushScheduled = false;
  private batchesInFlight = 0;
  private isClosed = false;
  private readonly unsubscribe: (() => void)[];
  private readonly noticeListeners: ((message: unknown) => void)[] = [];
  private readonly closeListeners: (() => void)[] = [];

  constructor(
    private readonly port: MessagePort,
    private readonly timeoutMs: number,
    private readonly observe: StoreCallObserver = () => undefined,
  ) {
    this.unsubscribe = [
      port.onMessage((message) => this.onMessage(message)),
      port.onClose(() => this.close()),
    ];
  }

  /** The primary is gone (or this channel was closed): every call fails. */
  get closed(): boolean {
    return this.isClosed;
  }

  call<T, Port extends StorePort = StorePort>(
    port: Port,
    op: StoreOperation<Port>,
    args: unknown[],
  ): Promise<T> {
    if (this.isClosed) {
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
    this.queue.push({ id, port, op, args });
    this.scheduleFlush();
    return result;
  }

  /** Sends a message that has no answer, now; throws when the primary is gone. */
  send(message: WatchRequest): void {
    this.port.send(message);
  }

  /** Told of every message from the primary that answers no call (its notices). */
  onNotice(listener: (message: unknown) => void): void {
    this.noticeListeners.push(listener);
  }

  /** Told once the channel has closed, after every pending call has failed. */
  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  /** Fails every pending and future call, then tells the close listeners. */
  close(): void {
    if (this.isClosed) {
      return;
    }
    this.isClosed = true;
    this.unsubscribe.forEach((unsubscribe) => unsubscribe());
    this.timers.forEach((timer) => clearTimeout(timer));
    this.timers.clear();
    this.queue = [];
    this.failAll([...this.pending.keys()]);
    this.closeListeners.forEach((listener) => listener());
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled && this.queue.length > 0) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.batchesInFlight >= MAX_BATCHES_IN_FLIGHT || this.isClosed) {
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
    if (isReplyPart(message)) {
      const { id, messagesJson } = message.part;
      if (!this.pending.has(id)) {
        return; // its call has failed already
      }
      const received = this.parts.get(id);
      this.parts.set(id, received ? received.concat(messagesJson) : messagesJson);
      return;
    }
    if (!isReplyBatch(message)) {
      this.noticeListeners.forEach((listener) => listener(message));
      return;
    }
    if (message.replies.length === 0) {
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
