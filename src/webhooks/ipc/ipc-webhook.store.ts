import { WebhookStore } from '../webhook.store';
import type {
  DeliveryPage,
  DeliveryQuery,
  EndpointPatch,
  EndpointView,
  NewEndpoint,
} from '../webhook.model';

/** The webhook store's operations a worker may call on the primary (STORE_PORTS.webhooks). */
type WebhookOperation = Exclude<keyof WebhookStore, 'constructor'>;

/**
 * A cluster worker's one IPC channel to the primary, as the webhooks use it: the conversation
 * store's (IpcStoreChannel, provided under this token by its module), so that a webhook call
 * travels in the batch of the request's other store calls. Null outside a cluster worker.
 */
export abstract class WebhookChannel {
  abstract call<T>(port: 'webhooks', op: WebhookOperation, args: unknown[]): Promise<T>;
}

/**
 * A worker's webhooks: kept and sent by the primary's in-memory store (its StoreHub serves
 * the `webhooks` port), reached over the worker's IPC channel. The changes themselves never
 * pass here: the primary's conversation store tells its webhook store directly.
 */
export class IpcWebhookStore extends WebhookStore {
  constructor(private readonly channel: WebhookChannel) {
    super();
  }

  createEndpoint(
    input: NewEndpoint,
    now: number,
  ): Promise<{ endpoint: EndpointView; secret: string }> {
    return this.channel.call('webhooks', 'createEndpoint', [input, now]);
  }

  listEndpoints(now: number): Promise<EndpointView[]> {
    return this.channel.call('webhooks', 'listEndpoints', [now]);
  }

  getEndpoint(id: string, now: number): Promise<EndpointView> {
    return this.channel.call('webhooks', 'getEndpoint', [id, now]);
  }

  updateEndpoint(id: string, patch: EndpointPatch, now: number): Promise<EndpointView> {
    return this.channel.call('webhooks', 'updateEndpoint', [id, patch, now]);
  }

  async deleteEndpoint(id: string): Promise<void> {
    await this.channel.call('webhooks', 'deleteEndpoint', [id]);
  }

  rotateSecret(
    id: string,
    now: number,
  ): Promise<{ secret: string; previousSecretExpiresAt: number }> {
    return this.channel.call('webhooks', 'rotateSecret', [id, now]);
  }

  sendTest(id: string, now: number): Promise<{ deliveryId: string }> {
    return this.channel.call('webhooks', 'sendTest', [id, now]);
  }

  deliveries(id: string, query: DeliveryQuery, now: number): Promise<DeliveryPage> {
    return this.channel.call('webhooks', 'deliveries', [id, query, now]);
  }

  async retryDelivery(id: string, deliveryId: string, now: number): Promise<void> {
    await this.channel.call('webhooks', 'retryDelivery', [id, deliveryId, now]);
  }

  recover(id: string, since: number, now: number): Promise<{ requeued: number }> {
    return this.channel.call('webhooks', 'recover', [id, since, now]);
  }

  pendingCounts(): Promise<Record<string, number>> {
    return this.channel.call('webhooks', 'pendingCounts', []);
  }
}
