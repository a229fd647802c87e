import { OnApplicationShutdown } from '@nestjs/common';
import { StoreError } from '../conversation.errors';
import {
  ConversationHistory,
  ConversationRepository,
  ConversationSummary,
  DeletedMessage,
  NewConversation,
  NewMessage,
  StoredMessage,
} from '../conversation.repository';
import {
  isReplyBatch,
  MessagePort,
  STORE_CHANNEL,
  StoreCall,
  StoreOperation,
  StoreReply,
} from './store-ipc.protocol';

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/**
 * A worker's view of the store the primary owns: every call is forwarded over the cluster
 * IPC channel to the primary's StoreHub, which applies it to the one in-memory repository.
 * Calls made in one event-loop turn go out as a single batch. A call with no answer within
 * the timeout fails with `store_unavailable`.
 */
export class IpcConversationRepository
  extends ConversationRepository
  implements OnApplicationShutdown
{
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private queue: StoreCall[] = [];
  private flushScheduled = false;
  private closed = false;
  private readonly unsubscribe: (() => void)[];

  constructor(
    private readonly port: MessagePort,
    private readonly timeoutMs: number,
  ) {
    super();
    this.unsubscribe = [
      port.onMessage((message) => this.onMessage(message)),
      port.onClose(() => this.close()),
    ];
  }

  createConversation(input: NewConversation): Promise<ConversationSummary> {
    return this.call('createConversation', [input]);
  }

  getConversation(conversationId: string): Promise<ConversationHistory | null> {
    return this.call('getConversation', [conversationId]);
  }

  appendMessage(conversationId: string, input: NewMessage): Promise<StoredMessage> {
    return this.call('appendMessage', [conversationId, input]);
  }

  deleteMessage(conversationId: string, messageId: string, now: number): Promise<DeletedMessage> {
    return this.call('deleteMessage', [conversationId, messageId, now]);
  }

  evictInactive(cutoff: number): Promise<number> {
    return this.call('evictInactive', [cutoff]);
  }

  count(): Promise<number> {
    return this.call('count', []);
  }

  onApplicationShutdown(): void {
    this.close();
  }

  /** Fails every pending and future call: the primary is gone. */
  close(): void {
    this.closed = true;
    this.unsubscribe.forEach((unsubscribe) => unsubscribe());
    this.failAll([...this.pending.keys()]);
  }

  private call<T>(op: StoreOperation, args: unknown[]): Promise<T> {
    if (this.closed) {
      return Promise.reject(new StoreError('store_unavailable'));
    }
    const id = this.nextId++;
    const result = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
    });
    this.queue.push({ id, op, args });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return result;
  }

  private flush(): void {
    this.flushScheduled = false;
    const calls = this.queue;
    this.queue = [];
    const ids = calls.map((call) => call.id);
    try {
      this.port.send({ ch: STORE_CHANNEL, calls });
    } catch {
      this.failAll(ids);
      return;
    }
    // One timer per batch rather than per call.
    setTimeout(() => this.failAll(ids), this.timeoutMs).unref();
  }

  private onMessage(message: unknown): void {
    if (!isReplyBatch(message)) {
      return;
    }
    for (const reply of message.replies) {
      this.settle(reply);
    }
  }

  private settle(reply: StoreReply): void {
    const pending = this.pending.get(reply.id);
    if (!pending) {
      return; // timed out already
    }
    this.pending.delete(reply.id);
    if (reply.ok) {
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

/** The worker's end of the cluster IPC channel to the primary. */
export function processPort(): MessagePort {
  return {
    send(message) {
      if (!process.send || !process.connected) {
        throw new Error('IPC channel closed');
      }
      // An error here means the channel closed meanwhile; 'disconnect' fails what is pending.
      process.send(message, undefined, undefined, () => undefined);
    },
    onMessage(listener) {
      process.on('message', listener);
      return () => process.off('message', listener);
    },
    onClose(listener) {
      process.on('disconnect', listener);
      return () => process.off('disconnect', listener);
    },
  };
}
