/**
 * Failures the store reports. They carry only a code so that they cross process
 * boundaries (cluster IPC, Redis scripts) unchanged; the HTTP layer maps codes to statuses.
 */
export type StoreErrorCode =
  | 'conversation_not_found'
  | 'message_not_found'
  | 'conversation_full'
  | 'capacity_exceeded'
  | 'store_unavailable';

export class StoreError extends Error {
  constructor(readonly code: StoreErrorCode) {
    super(code);
    this.name = 'StoreError';
  }
}
