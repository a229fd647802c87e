import { Module } from '@nestjs/common';
import { ConversationStoreModule } from '../conversations/conversation-store.module';
import { WebhookStoreModule } from '../webhooks/webhook-store.module';
import { SnapshotService } from './snapshot.service';

/**
 * Loaded by the process that owns the in-memory store: a single process or the primary. The
 * webhooks' endpoints and pending deliveries go in the same file (WebhookStoreModule's
 * SnapshotPart).
 */
@Module({
  imports: [ConversationStoreModule, WebhookStoreModule],
  providers: [SnapshotService],
})
export class SnapshotModule {}
