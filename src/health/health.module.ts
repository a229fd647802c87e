import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { ConversationStoreModule } from '../conversations/conversation-store.module';
import { HealthController } from './health.controller';
import { StoreHealthIndicator } from './store.health';

@Module({
  imports: [TerminusModule.forRoot({ errorLogStyle: 'pretty' }), ConversationStoreModule],
  controllers: [HealthController],
  providers: [StoreHealthIndicator],
})
export class HealthModule {}
