import { Module } from '@nestjs/common';
import { CommonModule } from '../common/common.module';
import { AppConfigModule } from '../config/config.module';
import { ConversationRepository } from '../conversations/conversation.repository';
import { ConversationStoreModule } from '../conversations/conversation-store.module';
import { EvictionModule } from '../eviction/eviction.module';
import { ObservabilityModule } from '../observability/observability.module';
import { SnapshotModule } from '../snapshot/snapshot.module';
import { StoreHub } from '../conversations/repositories/ipc/store-hub';
import { RateLimitStore } from '../conversations/rate-limit.store';

/** The cluster primary: no HTTP, just the one store, its eviction job and the IPC hub. */
@Module({
  imports: [
    AppConfigModule,
    CommonModule,
    ObservabilityModule,
    ConversationStoreModule,
    EvictionModule,
    SnapshotModule,
  ],
  providers: [
    {
      provide: StoreHub,
      inject: [ConversationRepository, RateLimitStore],
      useFactory: (repository: ConversationRepository, rateLimits: RateLimitStore) =>
        new StoreHub(repository, rateLimits),
    },
  ],
})
export class PrimaryModule {}
