import { Logger } from '@nestjs/common';
import { StoreError } from '../../../common/errors/store-error';
import { BufferedChange, IN_REPLAY, MessageRecord } from './memory-records';

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
export const KEPT_POST_BYTES = 240;
export const DELETED_CHANGE_BYTES = 112;
export const READ_CHANGE_BYTES = 64;

/**
 * A stored string's heap bytes: V8 keeps a string with no character above U+00FF one byte a
 * character, any other two.
 */
function stringBytes(text: string): number {
  // eslint-disable-next-line no-control-regex
  return /[^\u0000-\u00ff]/.test(text) ? 2 * text.length : text.length;
}

/** A stored message as the byte budget counts it. */
export function messageBytes(json: string): number {
  return MESSAGE_OVERHEAD_BYTES + stringBytes(json);
}

/** Takes `holder` off the record; the bytes the budget gives back (none while another holds it). */
export function letGo(message: MessageRecord, holder: number): number {
  message.holders &= ~holder;
  return message.holders === 0 ? messageBytes(message.json) : 0;
}

/** A replay buffer entry as the byte budget counts it, once it leaves the buffer. */
export function bufferedBytes(change: BufferedChange): number {
  if ('json' in change) {
    return letGo(change, IN_REPLAY);
  }
  if ('updated' in change) {
    return stateChangeBytes(change.updated);
  }
  return 'deleted' in change ? DELETED_CHANGE_BYTES : READ_CHANGE_BYTES;
}

/** A state change in the replay buffer: its text (two bytes a character) and the entry. */
export function stateChangeBytes(data: string): number {
  return 64 + 2 * data.length;
}

/** What a record's customer and metadata hold, as the budget counts them. */
export function stateBytes(state: { customer: object; metadata: object }): number {
  const customer = Object.keys(state.customer).length ? JSON.stringify(state.customer).length : 0;
  const metadata = Object.keys(state.metadata).length ? JSON.stringify(state.metadata).length : 0;
  // As object properties: about three times their text.
  return 3 * (customer + metadata);
}

/**
 * The store's byte budget (MAX_STORE_BYTES): a write that would pass it is refused with
 * store_full before anything visible changes.
 */
export class ByteBudget {
  private readonly logger = new Logger('Store');
  /** Past 90% of the budget a warning is logged, once until it falls below 80% again. */
  private warnedFull = false;

  constructor(readonly maxBytes: number) {}

  /** Whether the store would pass the budget holding `bytes`. */
  exceeded(bytes: number): boolean {
    return bytes > this.maxBytes;
  }

  /** Refuses with store_full when holding `bytes` would pass the budget; warns past 90%. */
  refuseOverBudget(bytes: number): void {
    if (bytes > this.maxBytes) {
      throw new StoreError('store_full');
    }
    if (!this.warnedFull && bytes > 0.9 * this.maxBytes) {
      this.warnedFull = true;
      this.logger.warn(
        `The store holds ${bytes} bytes, over 90% of MAX_STORE_BYTES (${this.maxBytes}): writes are refused with 507 past it`,
      );
    } else if (this.warnedFull && bytes < 0.8 * this.maxBytes) {
      this.warnedFull = false;
    }
  }
}
