import { Logger } from '@nestjs/common';
import { StoreError } from '../common/errors/store-error';
import {
  ConversationHistory,
  ConversationRepository,
} from '../conversations/conversation.repository';
import { RateLimitStore } from '../access/rate-limits/rate-limit.store';
import { WebhookStore } from '../webhooks/webhook.store';
import {
  ChangeNotice,
  InboxNotice,
  isRequestBatch,
  isWatchRequest,
  PART_CHARS,
  STORE_CHANNEL,
  STORE_PORTS,
  StoreCall,
  StoreOperation,
  StorePort,
  StoreReply,
  StoreReplyBatch,
  StoreReplyPart,
  TypingNotice,
  WatchRequest,
} from '../conversations/repositories/ipc/store-ipc.protocol';

const HISTORY_OPERATIONS = new Set<string>(['getConversation', 'getConversationIfChanged']);

type Operation = (...args: unknown[]) => Promise<unknown>;

/**
 * The primary's side of the store protocol: applies each worker's calls, in arrival order, to
 * the store of the port each names (the one conversation repository, the rate-limit
 * counters, the webhooks), and answers each batch with one reply batch.
 */
export class StoreHub {
  private readonly logger = new Logger(StoreHub.name);
  /** port → operation → the store's method: what a call may reach, and nothing else. */
  private readonly ports = new Map<string, Map<string, Operation>>();

  /**
   * Without `rateLimits` or `webhooks`, that port's calls are refused (as unknown ones are).
   */
  constructor(
    private readonly repository: ConversationRepository,
    rateLimits?: RateLimitStore,
    webhooks?: WebhookStore,
  ) {
    this.serve('conversations', repository);
    if (rateLimits) {
      this.serve('rateLimit', rateLimits);
    }
    if (webhooks) {
      this.serve('webhooks', webhooks);
    }
  }

  /** What each worker watches: worker → conversation → stop. */
  private readonly watches = new Map<number, Map<string, () => void>>();

  /**
   * Handles one message from a worker; `reply` sends to that worker, `from` names it (for
   * watches, which end with forget()).
   */
  handle(
    message: unknown,
    reply: (
      message: StoreReplyBatch | StoreReplyPart | ChangeNotice | TypingNotice | InboxNotice,
    ) => void,
    from = 0,
  ): boolean {
    if (isWatchRequest(message)) {
      this.updateWatch(from, message, reply);
      return true;
    }
    if (!isRequestBatch(message)) {
      return false;
    }
    // Every call starts now, in order: the in-memory repository applies each write
    // synchronously, so order of arrival is order of application.
    const replies = message.calls.map((call) => this.apply(call));
    void Promise.all(replies).then((settled) => {
      settled.forEach((answer, i) => {
        const history = answer.ok ? (answer.result as ConversationHistory | null) : null;
        const call = message.calls[i];
        if (
          call.port === 'conversations' &&
          HISTORY_OPERATIONS.has(call.op) &&
          Array.isArray(history?.messagesJson)
        ) {
          this.sendLeadingPieces(answer.id, history, reply);
        }
      });
      reply({ ch: STORE_CHANNEL, replies: settled });
    });
    return true;
  }

  /** Stops everything a worker watched: it has exited. */
  forget(from: number): void {
    this.watches.get(from)?.forEach((stop) => stop());
    this.watches.delete(from);
    this.inboxWatches.get(from)?.();
    this.inboxWatches.delete(from);
  }

  /** Which workers follow the inbox feed: worker → stop. */
  private readonly inboxWatches = new Map<number, () => void>();

  private updateWatch(
    from: number,
    request: WatchRequest,
    reply: (message: ChangeNotice | TypingNotice | InboxNotice) => void,
  ): void {
    if (request.inbox === true && !this.inboxWatches.has(from)) {
      this.inboxWatches.set(
        from,
        this.repository.watchInbox({
          event: (inboxEvent) => reply({ ch: STORE_CHANNEL, inboxEvent }),
          gap: () => undefined,
        }).stop,
      );
    } else if (request.inbox === false) {
      this.inboxWatches.get(from)?.();
      this.inboxWatches.delete(from);
    }
    let watched = this.watches.get(from);
    if (!watched) {
      watched = new Map();
      this.watches.set(from, watched);
    }
    if (request.watch !== undefined && !watched.has(request.watch)) {
      watched.set(
        request.watch,
        this.repository.watch(request.watch, {
          change: (change) => reply({ ch: STORE_CHANNEL, change }),
          typing: (typing) => reply({ ch: STORE_CHANNEL, typing }),
          // The primary's store is in memory, in this process: its watches have no gaps.
          gap: () => undefined,
        }).stop,
      );
    }
    if (request.unwatch !== undefined) {
      watched.get(request.unwatch)?.();
      watched.delete(request.unwatch);
    }
  }

  /**
   * Sends a long history's pieces ahead of the answer, at most PART_CHARS to a message, and
   * leaves the answer only the last group.
   */
  private sendLeadingPieces(
    id: number,
    history: ConversationHistory,
    reply: (part: StoreReplyPart) => void,
  ): void {
    const pieces = history.messagesJson;
    let group: string[] = [];
    let chars = 0;
    for (const piece of pieces) {
      if (chars > 0 && chars + piece.length > PART_CHARS) {
        reply({ ch: STORE_CHANNEL, part: { id, messagesJson: group } });
        group = [];
        chars = 0;
      }
      group.push(piece);
      chars += piece.length;
    }
    history.messagesJson = group;
  }

  /** Puts the port's operations (STORE_PORTS) of `store` in the table. */
  private serve<Port extends StorePort>(
    port: Port,
    store: Record<StoreOperation<Port>, unknown>,
  ): void {
    const operations = new Map<string, Operation>();
    for (const op of STORE_PORTS[port] as readonly StoreOperation<Port>[]) {
      // Looked up at each call, as a plain method call would.
      operations.set(op, (...args) => (store[op] as Operation).apply(store, args));
    }
    this.ports.set(port, operations);
  }

  private async apply(call: StoreCall): Promise<StoreReply> {
    const operation = this.ports.get(call.port)?.get(call.op);
    if (!operation || !Array.isArray(call.args)) {
      this.logger.warn(`Refused store call ${JSON.stringify(call.op)}`);
      return { id: call.id, ok: false, code: 'store_unavailable' };
    }
    try {
      const result = await operation(...call.args);
      return { id: call.id, ok: true, result };
    } catch (error) {
      if (error instanceof StoreError) {
        return { id: call.id, ok: false, code: error.code };
      }
      this.logger.error(
        `Store call ${call.op} failed`,
        error instanceof Error ? error.stack : error,
      );
      return { id: call.id, ok: false, code: 'store_unavailable' };
    }
  }
}
