import { Logger } from '@nestjs/common';
import { StoreError } from '../conversations/conversation.errors';
import { ConversationRepository } from '../conversations/conversation.repository';
import {
  isRequestBatch,
  STORE_CHANNEL,
  STORE_OPERATIONS,
  StoreCall,
  StoreReply,
  StoreReplyBatch,
} from '../conversations/repositories/store-ipc.protocol';

const ALLOWED = new Set<string>(STORE_OPERATIONS);

/**
 * The primary's side of the store protocol: applies each worker's calls to the one
 * repository, in arrival order, and answers each batch with one reply batch.
 */
export class StoreHub {
  private readonly logger = new Logger(StoreHub.name);

  constructor(private readonly repository: ConversationRepository) {}

  /** Handles one message from a worker; `reply` sends the answer back to that worker. */
  handle(message: unknown, reply: (batch: StoreReplyBatch) => void): boolean {
    if (!isRequestBatch(message)) {
      return false;
    }
    // Every call starts now, in order: the in-memory repository applies each write
    // synchronously, so order of arrival is order of application.
    const replies = message.calls.map((call) => this.apply(call));
    void Promise.all(replies).then((settled) => reply({ ch: STORE_CHANNEL, replies: settled }));
    return true;
  }

  private async apply(call: StoreCall): Promise<StoreReply> {
    if (!ALLOWED.has(call.op) || !Array.isArray(call.args)) {
      this.logger.warn(`Refused store call ${JSON.stringify(call.op)}`);
      return { id: call.id, ok: false, code: 'store_unavailable' };
    }
    try {
      const method = this.repository[call.op] as (...args: unknown[]) => Promise<unknown>;
      const result = await method.apply(this.repository, call.args);
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
