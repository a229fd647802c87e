import { Module } from '@nestjs/common';
import { ConversationStoreModule } from './conversation-store.module';
import { ConversationsController } from './conversations.controller';
import { ConversationsService } from './conversations.service';

@Module({
  imports: [ConversationStoreModule],
  controllers: [ConversationsController],
  providers: [ConversationsService],
})
export class ConversationsModule {}
