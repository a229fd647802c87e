import {
  DeliveryPage,
  DeliveryQuery,
  EndpointPatch,
  EndpointView,
  NewEndpoint,
} from './webhook.model';

/**
 * The webhook endpoints and their deliveries, wherever they are kept: the memory store (the
 * cluster primary's, or a single process's, reached over IPC by the workers) or Redis (BullMQ
 * queues, one per endpoint). Every method rejects with a StoreError: webhook_not_found for an
 * unknown endpoint, store_unavailable when the store does not answer. The contract suite
 * (test/contracts/webhook-store.contract.ts) runs every implementation.
 */
export abstract class WebhookStore {
  /** The endpoint and its first secret; rejects with webhook_limit_reached past WEBHOOK_MAX_ENDPOINTS. */
  abstract createEndpoint(
    input: NewEndpoint,
    now: number,
  ): Promise<{ endpoint: EndpointView; secret: string }>;

  /** Every endpoint, oldest first. */
  abstract listEndpoints(now: number): Promise<EndpointView[]>;

  abstract getEndpoint(id: string, now: number): Promise<EndpointView>;

  /** Disabling (enabled: false, or a disable) stops queueing at once; enabling starts it. */
  abstract updateEndpoint(id: string, patch: EndpointPatch, now: number): Promise<EndpointView>;

  /** The endpoint, its queue and its log. */
  abstract deleteEndpoint(id: string): Promise<void>;

  /** A new secret; the old one signs beside it for 24 h. Rejects with rotation_limit_reached. */
  abstract rotateSecret(
    id: string,
    now: number,
  ): Promise<{ secret: string; previousSecretExpiresAt: number }>;

  /** Queues a `webhook.test` event for this endpoint (even a disabled one); its delivery id. */
  abstract sendTest(id: string, now: number): Promise<{ deliveryId: string }>;

  /** The endpoint's log: its deliveries, newest first, within WEBHOOK_RETENTION_MS. */
  abstract deliveries(id: string, query: DeliveryQuery, now: number): Promise<DeliveryPage>;

  /**
   * Queues a finished delivery again with a fresh schedule, or makes a pending one that waits
   * for its next attempt due now (webhook_delivery_not_found).
   */
  abstract retryDelivery(id: string, deliveryId: string, now: number): Promise<void>;

  /** Each endpoint's pending deliveries, by endpoint id (the queue-depth gauge). */
  abstract pendingCounts(): Promise<Record<string, number>>;

  /** Queues again every failed delivery queued at or after `since`; how many. */
  abstract recover(id: string, since: number, now: number): Promise<{ requeued: number }>;
}
