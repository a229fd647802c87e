import { Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { ConversationStoreModule } from '../conversations/conversation-store.module';
import { EvictionService } from './eviction.service';
import { SnoozeWakerService } from './snooze-waker.service';

@Module({
  imports: [ScheduleModule.forRoot(), ConversationStoreModule],
  providers: [EvictionService, SnoozeWakerService],
  exports: [EvictionService, SnoozeWakerService],
})
export class EvictionModule {}
