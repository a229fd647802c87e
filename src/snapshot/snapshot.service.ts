import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { createReadStream, existsSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { SnapshotSettings } from '../config/app.settings';
import { ConversationRepository } from '../conversations/conversation.repository';
import { InMemoryConversationRepository } from '../conversations/repositories/memory/in-memory-conversation.repository';

/**
 * SNAPSHOT_PATH: the in-memory store is written to that file when the process that owns it
 * stops gracefully (a temporary file, fsync, then rename, so a crash mid-write leaves the
 * last snapshot whole), and read back at start. A planned restart keeps every conversation.
 */
@Injectable()
export class SnapshotService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(SnapshotService.name);

  constructor(
    private readonly repository: ConversationRepository,
    private readonly settings: SnapshotSettings,
  ) {}

  private get store(): InMemoryConversationRepository | null {
    return this.settings.path && this.repository instanceof InMemoryConversationRepository
      ? this.repository
      : null;
  }

  async onModuleInit(): Promise<void> {
    const store = this.store;
    const path = this.settings.path;
    if (!store || !existsSync(path)) {
      return;
    }
    let count = 0;
    const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line) {
        store.restore(line);
        count++;
      }
    }
    this.logger.log(`Restored ${count} conversation(s) from ${path}`);
  }

  async onApplicationShutdown(): Promise<void> {
    const store = this.store;
    const path = this.settings.path;
    if (!store) {
      return;
    }
    const temporary = `${path}.${process.pid}.tmp`;
    const file = await open(temporary, 'w');
    let count = 0;
    try {
      let chunk = '';
      for (const line of store.snapshotLines()) {
        chunk += `${line}\n`;
        count++;
        if (chunk.length > 1 << 20) {
          await file.write(chunk);
          chunk = '';
        }
      }
      await file.write(chunk);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
    this.logger.log(`Wrote ${count} conversation(s) to ${path}`);
  }
}
