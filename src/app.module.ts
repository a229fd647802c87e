import { Module, Provider } from '@nestjs/common';
import { APP_FILTER, APP_PIPE } from '@nestjs/core';
import { AccessModule } from './access/access.module';
import { CommonModule } from './common/common.module';
import { ProcessRoleModule } from './cluster/process-role';
import { ProblemExceptionFilter } from './common/errors/problem.filter';
import { AppValidationPipe } from './common/validation/validation.pipe';
import { AppConfigModule } from './config/config.module';
import { ConversationsModule } from './conversations/conversations.module';
import { EvictionModule } from './eviction/eviction.module';
import { HealthModule } from './health/health.module';
import { ObservabilityModule } from './observability/observability.module';
import { SnapshotModule } from './snapshot/snapshot.module';
import { WebhooksModule } from './webhooks/webhooks.module';
import { WebhookStoreModule } from './webhooks/webhook-store.module';

/** The HTTP API: what a single process and every cluster worker (cluster/worker.module.ts) serve. */
export const HTTP_API_IMPORTS = [
  AppConfigModule,
  CommonModule,
  ObservabilityModule,
  AccessModule,
  ConversationsModule,
  WebhooksModule,
  HealthModule,
];

export const HTTP_API_PROVIDERS: Provider[] = [
  { provide: APP_PIPE, useClass: AppValidationPipe },
  { provide: APP_FILTER, useClass: ProblemExceptionFilter },
];

/**
 * The root of a single process (WORKERS=0), and of the e2e tests: the HTTP API with the store
 * in this process, and so the jobs that run where the store lives: the webhooks' queues,
 * eviction and snapshots (in
 * cluster mode the primary runs them, see cluster/primary.module.ts).
 */
@Module({
  imports: [
    ProcessRoleModule.forRole('server'),
    ...HTTP_API_IMPORTS,
    WebhookStoreModule,
    EvictionModule,
    SnapshotModule,
  ],
  providers: HTTP_API_PROVIDERS,
})
export class AppModule {}
