/**
 * Failures the store reports. They carry only a code so that they cross process
 * boundaries (cluster IPC, Redis scripts) unchanged. What each answers over HTTP (status,
 * text, headers) is its entry in problem.catalogue.ts, which the exception filter applies:
 * callers just let them through.
 */
export type StoreErrorCode =
  | 'conversation_not_found'
  | 'message_not_found'
  | 'conversation_full'
  | 'capacity_exceeded'
  | 'idempotency_key_reused'
  | 'store_unavailable'
  /** A read receipt for a seq beyond the conversation's last seq. */
  | 'seq_beyond_last'
  /** The store's memory is full (MAX_STORE_BYTES, or Redis maxmemory): nothing was written. */
  | 'store_full'
  /** REDIS_WAIT_REPLICAS did not confirm a write in time: it may or may not stand. */
  | 'replication_timeout'
  | 'webhook_not_found'
  | 'webhook_delivery_not_found'
  | 'webhook_limit_reached'
  | 'rotation_limit_reached';

export class StoreError extends Error {
  /** @param message what went wrong, for logs and health reports; only the code crosses IPC */
  constructor(
    readonly code: StoreErrorCode,
    message: string = code,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}
