import { Module } from '@nestjs/common';
import { AccessModule } from '../access/access.module';
import { ConversationStoreModule } from './conversation-store.module';
import { ConversationsController } from './conversations.controller';
import { ConversationsService } from './conversations.service';
import { EventStreamsService } from './event-streams.service';
import { IdempotencyKeyPipe } from './idempotency';

@Module({
  imports: [ConversationStoreModule, AccessModule],
  controllers: [ConversationsController],
  providers: [ConversationsService, EventStreamsService, IdempotencyKeyPipe],
})
export class ConversationsModule {}
