import { Module } from '@nestjs/common';
import { AccessModule } from '../access/access.module';
import { WebhookStoreModule } from './webhook-store.module';
import { WebhooksController } from './webhooks.controller';
import { WebhooksService } from './webhooks.service';

/**
 * The webhook routes. The store they reach is WebhookStoreModule's: in a cluster worker on the
 * in-memory store, the primary's over IPC; on Redis, this process's view of the shared one.
 */
@Module({
  imports: [WebhookStoreModule, AccessModule],
  controllers: [WebhooksController],
  providers: [WebhooksService],
})
export class WebhooksModule {}
