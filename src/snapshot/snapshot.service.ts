import {
  Inject,
  Injectable,
  Logger,
  OnApplicationShutdown,
  OnModuleInit,
  Optional,
} from '@nestjs/common';
import { createReadStream, existsSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { SnapshotSettings } from '../config/app.settings';
import { SnapshotPart, SnapshotSource } from './snapshot-source';

/**
 * SNAPSHOT_PATH: the in-memory store is written to that file when the process that owns it
 * stops gracefully (a temporary file, fsync, then rename, so a crash mid-write leaves the
 * last snapshot whole), and read back at start. A planned restart keeps every conversation,
 * and the webhooks' endpoints and pending deliveries (a SnapshotPart, in the same file).
 */
@Injectable()
export class SnapshotService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(SnapshotService.name);

  constructor(
    private readonly settings: SnapshotSettings,
    // Named: a nullable parameter's type is not emitted for injection.
    @Inject(SnapshotSource) private readonly source: SnapshotSource | null,
    @Optional() @Inject(SnapshotPart) private readonly part: SnapshotPart | null = null,
  ) {}

  private get store(): SnapshotSource | null {
    return this.settings.path ? this.source : null;
  }

  async onModuleInit(): Promise<void> {
    const store = this.store;
    const path = this.settings.path;
    if (!store || !existsSync(path)) {
      return;
    }
    let count = 0;
    let others = 0;
    for await (const line of linesOf(path)) {
      if (!line.trim()) {
        continue;
      }
      if (this.part?.restore(line)) {
        others++;
      } else {
        store.restore(line);
        count++;
      }
    }
    this.logger.log(
      `Restored ${count} conversation(s)${others ? ` and ${others} webhook line(s)` : ''} from ${path}`,
    );
  }

  async onApplicationShutdown(): Promise<void> {
    const store = this.store;
    const path = this.settings.path;
    if (!store) {
      return;
    }
    const temporary = `${path}.${process.pid}.tmp`;
    // Only the server's user may read it: it holds token hashes, every kept message and the
    // webhooks' signing secrets.
    const file = await open(temporary, 'w', 0o600);
    let count = 0;
    let others = 0;
    try {
      let chunk = '';
      for (const line of store.snapshotLines()) {
        chunk += `${escapeLineSeparators(line)}\n`;
        count++;
        if (chunk.length > 1 << 20) {
          await file.write(chunk);
          chunk = '';
        }
      }
      for (const line of this.part?.snapshotLines() ?? []) {
        chunk += `${escapeLineSeparators(line)}\n`;
        others++;
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
    this.logger.log(
      `Wrote ${count} conversation(s)${others ? ` and ${others} webhook line(s)` : ''} to ${path}`,
    );
  }
}

/**
 * The file's lines, split at "\n" only. node:readline would also split at U+2028 and U+2029,
 * which JSON.stringify leaves raw inside strings, and cut a message's JSON in two.
 */
async function* linesOf(path: string): AsyncGenerator<string> {
  let pending: string[] = [];
  for await (const chunk of createReadStream(path, 'utf8') as AsyncIterable<string>) {
    let start = 0;
    for (let end = chunk.indexOf('\n'); end !== -1; end = chunk.indexOf('\n', start)) {
      pending.push(chunk.slice(start, end));
      yield pending.join('');
      pending = [];
      start = end + 1;
    }
    if (start < chunk.length) {
      pending.push(chunk.slice(start));
    }
  }
  if (pending.length) {
    yield pending.join('');
  }
}

/**
 * U+2028 and U+2029 written as JSON escapes: they can only stand inside a JSON string, where
 * the escape reads back the same, and then any line reader (an older build's too) keeps the
 * line whole.
 */
function escapeLineSeparators(line: string): string {
  return line.replace(/[\u2028\u2029]/g, (c) => (c === '\u2028' ? '\\u2028' : '\\u2029'));
}
