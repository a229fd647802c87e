import { Module } from '@nestjs/common';
import { ConversationRepository } from './conversation.repository';
import { InMemoryConversationRepository } from './repositories/in-memory-conversation.repository';

/** Provides the storage port; the implementation is chosen here and nowhere else. */
@Module({
  providers: [
    { provide: ConversationRepository, useFactory: () => new InMemoryConversationRepository() },
  ],
  exports: [ConversationRepository],
})
export class ConversationStoreModule {}
