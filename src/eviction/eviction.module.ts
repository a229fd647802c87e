import { Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { ConversationStoreModule } from '../conversations/conversation-store.module';
import { EvictionService } from './eviction.service';

@Module({
  imports: [ScheduleModule.forRoot(), ConversationStoreModule],
  providers: [EvictionService],
  exports: [EvictionService],
})
export class EvictionModule {}
