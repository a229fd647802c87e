import { MiddlewareConsumer, Module, NestModule, RequestMethod } from '@nestjs/common';
import { AccessModule } from '../access/access.module';
import { ConversationStoreModule } from './conversation-store.module';
import { ConversationsController } from './conversations.controller';
import { ConversationsService } from './conversations.service';
import { EventStreamsService } from './event-streams.service';
import { IdempotencyMiddleware } from './idempotency.middleware';

@Module({
  imports: [ConversationStoreModule, AccessModule],
  controllers: [ConversationsController],
  providers: [ConversationsService, EventStreamsService],
})
export class ConversationsModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    // Runs after the app-wide JSON body middleware (AppModule), so it sees the parsed body.
    consumer
      .apply(IdempotencyMiddleware)
      .forRoutes(
        { path: 'api/conversations', method: RequestMethod.POST },
        { path: 'api/conversations/:conversationId/messages', method: RequestMethod.POST },
      );
  }
}
