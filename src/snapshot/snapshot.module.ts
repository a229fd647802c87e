import { Module } from '@nestjs/common';
import { ConversationStoreModule } from '../conversations/conversation-store.module';
import { SnapshotService } from './snapshot.service';

/** Loaded by the process that owns the in-memory store: a single process or the primary. */
@Module({
  imports: [ConversationStoreModule],
  providers: [SnapshotService],
})
export class SnapshotModule {}
