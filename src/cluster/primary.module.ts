import { Module } from '@nestjs/common';
import cluster, { Worker } from 'node:cluster';
import { CommonModule } from '../common/common.module';
import { ProcessRoleModule } from './process-role';
import { AppConfigModule } from '../config/config.module';
import { ConversationRepository } from '../conversations/conversation.repository';
import { ConversationStoreModule } from '../conversations/conversation-store.module';
import { StoreHub } from './store-hub';
import { EvictionModule } from '../eviction/eviction.module';
import { ClusterMetricsHub, MetricsPeer } from '../observability/cluster-metrics';
import { COLLECT_TIMEOUT_MS, MetricsService } from '../observability/metrics.service';
import { ObservabilityModule } from '../observability/observability.module';
import { SnapshotModule } from '../snapshot/snapshot.module';
import { RateLimitStore } from '../access/rate-limits/rate-limit.store';
import { RateLimitStoreModule } from '../access/rate-limits/rate-limits.module';
import { PrimaryMessageRouter } from './primary-message-router';
import { sendToWorker } from './worker-supervisor';
import { WebhookStore } from '../webhooks/webhook.store';
import { WebhookStoreModule } from '../webhooks/webhook-store.module';

/** The workers running now, as the metrics hub asks them for their metrics. */
function connectedWorkers(): MetricsPeer[] {
  return Object.values(cluster.workers ?? {})
    .filter((worker): worker is Worker => Boolean(worker?.isConnected()))
    .map((worker) => ({ send: (message) => sendToWorker(worker, message) }));
}

/**
 * The root of the cluster primary: no HTTP, just the one store (and the webhooks it tells), its
 * eviction and snapshot jobs, and the hubs that answer the workers (routed by PrimaryMessageRouter).
 */
@Module({
  imports: [
    ProcessRoleModule.forRole('primary'),
    AppConfigModule,
    CommonModule,
    ObservabilityModule,
    ConversationStoreModule,
    RateLimitStoreModule,
    WebhookStoreModule,
    EvictionModule,
    SnapshotModule,
  ],
  providers: [
    {
      provide: StoreHub,
      inject: [ConversationRepository, RateLimitStore, WebhookStore],
      useFactory: (
        repository: ConversationRepository,
        rateLimits: RateLimitStore,
        webhooks: WebhookStore,
      ) => new StoreHub(repository, rateLimits, webhooks),
    },
    {
      provide: ClusterMetricsHub,
      inject: [MetricsService],
      useFactory: (metrics: MetricsService) =>
        new ClusterMetricsHub(metrics.registry, connectedWorkers, COLLECT_TIMEOUT_MS),
    },
    PrimaryMessageRouter,
  ],
})
export class PrimaryModule {}
