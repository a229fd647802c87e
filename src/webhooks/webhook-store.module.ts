import {
  BeforeApplicationShutdown,
  Inject,
  Logger,
  Module,
  OnApplicationBootstrap,
} from '@nestjs/common';
import { PROCESS_ROLE, ProcessRole } from '../cluster/process-role';
import { RedisSettings, StoreSettings, WebhookSettings } from '../config/app.settings';
import { ConversationRepository } from '../conversations/conversation.repository';
import { RedisConversationRepository } from '../conversations/repositories/redis/redis-conversation.repository';
import { MetricsService } from '../observability/metrics.service';
import { RedisFanOut } from './redis/redis-fan-out';
import { RedisOutbox } from './redis/redis-outbox';
import { RedisReconcile } from './redis/redis-reconcile';
import { RedisWebhookStore } from './redis/redis-webhook.store';
import { WebhookMetrics } from './webhook-metrics';
import { ChangeOutbox } from '../conversations/change-outbox';
import { SnapshotPart } from '../snapshot/snapshot-source';
import { DeliveryObserver, SILENT_OBSERVER } from './delivery-policy';
import { HttpWebhookSender } from './http-webhook-sender';
import { ThreadedWebhookSender } from './thread/threaded-webhook-sender';
import { IpcWebhookStore, WebhookChannel } from './ipc/ipc-webhook.store';
import { InMemoryWebhookStore } from './memory/in-memory-webhook.store';
import { WebhookSender } from './webhook-sender';
import { WebhookStore } from './webhook.store';

/**
 * The DeliveryObserver the stores report to (metrics and logs); SILENT_OBSERVER when none is
 * provided. Its provider must be visible here: from a global module.
 */
export const DELIVERY_OBSERVER = Symbol('DELIVERY_OBSERVER');

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
      provide: DELIVERY_OBSERVER,
      inject: [MetricsService],
      useFactory: (metrics: MetricsService) => new WebhookMetrics(metrics),
    },
    {
      provide: WebhookSender,
      inject: [WebhookSettings, StoreSettings, PROCESS_ROLE],
      useFactory: (
        settings: WebhookSettings,
        store: StoreSettings,
        role: ProcessRole,
      ): WebhookSender => {
        const options = {
          timeoutMs: settings.timeoutMs,
          allowPrivateNetworks: settings.allowPrivateNetworks,
        };
        // A single process on the in-memory store serves the routes in the loop that would see
        // the answers to its attempts: they run in a thread (ThreadedWebhookSender says why).
        // Elsewhere the deliverer serves no route (the cluster's primary), and a thread would
        // only add its cost: measured in docs/performance.md, "Webhooks".
        return store.kind === 'memory' && role === 'server'
          ? new ThreadedWebhookSender({ ...options, maxInFlight: settings.maxInFlight })
          : new HttpWebhookSender(options);
      },
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
        ConversationRepository,
        RedisSettings,
        { token: DELIVERY_OBSERVER, optional: true },
      ],
      useFactory: (
        settings: WebhookSettings,
        store: StoreSettings,
        role: ProcessRole,
        outbox: ChangeOutbox,
        channel: WebhookChannel | null,
        sender: WebhookSender,
        conversations: ConversationRepository,
        redis: RedisSettings,
        observer: DeliveryObserver | undefined,
      ): WebhookStore => {
        if (store.kind === 'redis') {
          if (!(conversations instanceof RedisConversationRepository)) {
            throw new Error('STORE=redis without the Redis conversation store');
          }
          const redisStore = new RedisWebhookStore(
            conversations.connection,
            redis.keyPrefix,
            settings,
            sender,
            observer ?? SILENT_OBSERVER,
          );
          // Every process that applies changes writes them to the outbox; the fan-out and the
          // deliveries run where eviction does (see WebhookStoreModule.onApplicationBootstrap).
          outbox.attach(
            new RedisOutbox(conversations.connection, {
              waitReplicas: redis.waitReplicas,
              waitTimeoutMs: redis.waitTimeoutMs,
              wantsTranscripts: () => redisStore.queues.wants('conversation.transcript'),
            }),
          );
          return redisStore;
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
  private readonly logger = new Logger('Webhooks');
  /** On Redis, in the process that delivers: the fan-out and the reconcile pass. */
  private fanOut: RedisFanOut | null = null;
  private reconcile: RedisReconcile | null = null;

  constructor(
    private readonly store: WebhookStore,
    private readonly sender: WebhookSender,
    private readonly outbox: ChangeOutbox,
    private readonly settings: WebhookSettings,
    @Inject(PROCESS_ROLE) private readonly role: ProcessRole,
    @Inject(DELIVERY_OBSERVER) private readonly observer: WebhookMetrics,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (this.store instanceof InMemoryWebhookStore) {
      this.store.start();
      this.observer.watchQueues(() => this.store.pendingCounts());
      return;
    }
    // On Redis the cluster's workers serve the routes and write the outbox; the primary (or a
    // single process) fans it out and delivers, as it runs eviction, so each instance delivers
    // from one process.
    if (this.store instanceof RedisWebhookStore && this.role !== 'worker') {
      const store = this.store;
      const sink = this.outbox.sinkAs(RedisOutbox);
      await store.start();
      // Outbox entries a dead process had read wait as long as the jobs it held (their lock,
      // max(2 × WEBHOOK_TIMEOUT_MS, 1 s)) before another process takes them: a crash delays
      // its changes no more than its deliveries. A slow process's batch taken twice is queued
      // twice, which the delivery queues drop (the job id is the event's).
      const claimIdleMs = Math.max(2 * this.settings.timeoutMs, 1_000);
      this.fanOut = new RedisFanOut(store.connection.redis, sink.stream, store.queues, {
        claimIdleMs,
        claimEveryMs: Math.min(claimIdleMs, 5_000),
      });
      this.fanOut.start();
      this.reconcile = new RedisReconcile(
        store.connection,
        sink,
        {
          everyMs: this.settings.reconcileMs,
          // The lock of a holder that died (a SIGKILL mid-pass) stops every instance's passes
          // until it expires, and a crash is what leaves changes for them to queue: ten
          // intervals (50 s by default, as long as before), at least 2 s. A pass that outlives
          // it may overlap the next one, which queues duplicates at worst (dropped downstream).
          lockMs: Math.min(Math.max(10 * this.settings.reconcileMs, 2_000), 60_000),
        },
        this.observer,
      );
      this.reconcile.start();
      this.observer.watchQueues(() => store.pendingCounts());
      this.logger.log('Delivering webhooks from this process');
    }
  }

  // Before SnapshotService writes the file (onApplicationShutdown): aborted attempts are
  // pending again by then, and saved as such.
  async beforeApplicationShutdown(): Promise<void> {
    if (this.store instanceof InMemoryWebhookStore) {
      await this.store.stop();
    }
    await this.reconcile?.stop();
    await this.fanOut?.stop();
    if (this.store instanceof RedisWebhookStore) {
      await this.store.stop();
    }
    this.sender.close();
  }
}
