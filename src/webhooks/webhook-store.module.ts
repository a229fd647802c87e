import { BeforeApplicationShutdown, Module, OnApplicationBootstrap } from '@nestjs/common';
import { PROCESS_ROLE, ProcessRole } from '../cluster/process-role';
import { StoreSettings, WebhookSettings } from '../config/app.settings';
import { ChangeOutbox } from '../conversations/change-outbox';
import { SnapshotPart } from '../snapshot/snapshot-source';
import { DeliveryObserver, SILENT_OBSERVER } from './delivery-policy';
import { HttpWebhookSender } from './http-webhook-sender';
import { IpcWebhookStore, WebhookChannel } from './ipc/ipc-webhook.store';
import { InMemoryWebhookStore } from './memory/in-memory-webhook.store';
import { WebhookSender } from './webhook-sender';
import { WebhookStore } from './webhook.store';

/**
 * The DeliveryObserver the stores report to (metrics and logs); SILENT_OBSERVER when none is
 * provided. Its provider must be visible here: from a global module.
 */
export const DELIVERY_OBSERVER = Symbol('DELIVERY_OBSERVER');

/** STORE=redis until its webhook store lands: every call fails with 'not yet'. */
class NotYetWebhookStore extends WebhookStore {
  private notYet(): Promise<never> {
    return Promise.reject(new Error('webhooks on STORE=redis: not yet'));
  }
  createEndpoint = () => this.notYet();
  listEndpoints = () => this.notYet();
  getEndpoint = () => this.notYet();
  updateEndpoint = () => this.notYet();
  deleteEndpoint = () => this.notYet();
  rotateSecret = () => this.notYet();
  sendTest = () => this.notYet();
  deliveries = () => this.notYet();
  retryDelivery = () => this.notYet();
  recover = () => this.notYet();
}

/**
 * Provides the WebhookStore, chosen here and nowhere else: with STORE=redis every process
 * keeps its queues in Redis; a cluster worker on the in-memory store reaches the primary's
 * over its IPC channel; a single process or the primary keeps them in memory, told every
 * change by the conversation store's outbox, and sends them (started at bootstrap, stopped
 * before the snapshot is written, so that attempts in flight are saved as pending).
 *
 * Imported by every root that needs it (AppModule, PrimaryModule, SnapshotModule, the HTTP
 * side's WebhooksModule): Nest makes one instance of a module, so one store per process.
 */
@Module({
  providers: [
    {
      provide: WebhookSender,
      inject: [WebhookSettings],
      useFactory: (settings: WebhookSettings) =>
        new HttpWebhookSender({
          timeoutMs: settings.timeoutMs,
          allowPrivateNetworks: settings.allowPrivateNetworks,
        }),
    },
    {
      provide: WebhookStore,
      inject: [
        WebhookSettings,
        StoreSettings,
        PROCESS_ROLE,
        ChangeOutbox,
        WebhookChannel,
        WebhookSender,
        { token: DELIVERY_OBSERVER, optional: true },
      ],
      useFactory: (
        settings: WebhookSettings,
        store: StoreSettings,
        role: ProcessRole,
        outbox: ChangeOutbox,
        channel: WebhookChannel | null,
        sender: WebhookSender,
        observer: DeliveryObserver | undefined,
      ): WebhookStore => {
        if (store.kind === 'redis') {
          // NOT YET: the Redis store (BullMQ, one queue per endpoint) goes here. Until then
          // a Redis server starts, and every webhook call fails.
          return new NotYetWebhookStore();
        }
        if (role === 'worker') {
          if (!channel) {
            throw new Error('a cluster worker on the in-memory store has no IPC channel');
          }
          return new IpcWebhookStore(channel);
        }
        const memory = new InMemoryWebhookStore(settings, sender, observer ?? SILENT_OBSERVER);
        outbox.attach(memory);
        return memory;
      },
    },
    {
      // Only a store in this process's memory is kept in the snapshot.
      provide: SnapshotPart,
      inject: [WebhookStore],
      useFactory: (store: WebhookStore): SnapshotPart | null =>
        store instanceof InMemoryWebhookStore ? store : null,
    },
  ],
  exports: [WebhookStore, WebhookSender, SnapshotPart],
})
export class WebhookStoreModule implements OnApplicationBootstrap, BeforeApplicationShutdown {
  constructor(
    private readonly store: WebhookStore,
    private readonly sender: WebhookSender,
  ) {}

  onApplicationBootstrap(): void {
    if (this.store instanceof InMemoryWebhookStore) {
      this.store.start();
    }
  }

  // Before SnapshotService writes the file (onApplicationShutdown): aborted attempts are
  // pending again by then, and saved as such.
  async beforeApplicationShutdown(): Promise<void> {
    if (this.store instanceof InMemoryWebhookStore) {
      await this.store.stop();
    }
    this.sender.close();
  }
}
