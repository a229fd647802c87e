import { Module } from '@nestjs/common';
import { APP_FILTER, APP_PIPE } from '@nestjs/core';
import cluster from 'node:cluster';
import { AccessModule } from './access/access.module';
import { CommonModule } from './common/common.module';
import { ProblemExceptionFilter } from './common/problem.filter';
import { AppValidationPipe } from './common/validation.pipe';
import { AppConfigModule } from './config/config.module';
import { ConversationsModule } from './conversations/conversations.module';
import { EvictionModule } from './eviction/eviction.module';
import { HealthModule } from './health/health.module';
import { ObservabilityModule } from './observability/observability.module';
import { SnapshotModule } from './snapshot/snapshot.module';

@Module({
  imports: [
    AppConfigModule,
    CommonModule,
    ObservabilityModule,
    AccessModule,
    ConversationsModule,
    HealthModule,
    // The eviction job runs where the store lives: here in a single process, in the primary
    // under cluster mode (see cluster/primary.module.ts), never in a worker.
    ...(cluster.isWorker ? [] : [EvictionModule, SnapshotModule]),
  ],
  providers: [
    { provide: APP_PIPE, useClass: AppValidationPipe },
    { provide: APP_FILTER, useClass: ProblemExceptionFilter },
  ],
})
export class AppModule {}
