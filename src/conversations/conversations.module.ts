import { Module } from '@nestjs/common';
import { AccessModule } from '../access/access.module';
import { ConversationStoreModule } from './conversation-store.module';
import { ConversationsController } from './conversations.controller';
import { ConversationsService } from './conversations.service';
import { EventStreamsService } from './event-streams.service';
import { IdempotencyKeyPipe } from './idempotency';
import { InboxController } from './inbox.controller';
import { InboxService } from './inbox.service';

@Module({
  imports: [ConversationStoreModule, AccessModule],
  // The inbox first: its `counts` and `events` must not be taken for a conversation id.
  controllers: [InboxController, ConversationsController],
  providers: [ConversationsService, InboxService, EventStreamsService, IdempotencyKeyPipe],
})
export class ConversationsModule {}
