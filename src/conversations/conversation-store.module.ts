import { Module } from '@nestjs/common';
import cluster from 'node:cluster';
import { AppConfig, appConfig } from '../config/app.config';
import { ConversationRepository } from './conversation.repository';
import { InMemoryConversationRepository } from './repositories/in-memory-conversation.repository';
import { IpcConversationRepository, processPort } from './repositories/ipc-conversation.repository';

/**
 * Provides the storage port; the implementation is chosen here and nowhere else. A cluster
 * worker reaches the primary's store over IPC; a single process or the primary holds it.
 */
@Module({
  providers: [
    {
      provide: ConversationRepository,
      inject: [appConfig.KEY],
      useFactory: (config: AppConfig): ConversationRepository =>
        cluster.isWorker
          ? new IpcConversationRepository(processPort(), config.STORE_TIMEOUT_MS)
          : new InMemoryConversationRepository(),
    },
  ],
  exports: [ConversationRepository],
})
export class ConversationStoreModule {}
