import { Module } from '@nestjs/common';
import { ConversationStoreModule } from './conversation-store.module';
import { ConversationsController } from './conversations.controller';
import { ConversationsService } from './conversations.service';
import { EventStreamsService } from './event-streams.service';

@Module({
  imports: [ConversationStoreModule],
  controllers: [ConversationsController],
  providers: [ConversationsService, EventStreamsService],
})
export class ConversationsModule {}
