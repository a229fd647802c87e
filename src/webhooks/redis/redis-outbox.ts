import { Logger } from '@nestjs/common';
import { ChangeSink, EvictedConversation, TappedChange } from '../../conversations/change-outbox';
import { AcknowledgedWrites } from '../../conversations/repositories/redis/acknowledged-writes';
import { markQueued } from '../../conversations/repositories/redis/queued-mark';
import { RedisStoreConnection } from '../../conversations/repositories/redis/redis-connection';
import { evictionEvents, WebhookEvent } from '../webhook.model';

/** An outbox entry's field: a TappedChange's JSON. */
export const CHANGE_FIELD = 'c';
/** An outbox entry's field: a WebhookEvent's JSON (an eviction's events, made when it happened). */
export const EVENT_FIELD = 'e';

export interface RedisOutboxOptions {
  /** Replicas that must have an outbox entry before the write answers (REDIS_WAIT_REPLICAS). */
  waitReplicas?: number;
  waitTimeoutMs?: number;
  /** Whether some endpoint takes conversation.transcript (read at each eviction). */
  wantsTranscripts?: () => boolean;
}

/**
 * The Redis store's ChangeSink: one outbox entry per applied change, in one stream
 * (`<prefix>{wh}:outbox`: one slot, so it is one key on a cluster too), written before the
 * request answers. With REDIS_WAIT_REPLICAS the entry is waited for as the write was (see
 * AcknowledgedWrites), so an answered change survives a failover of the outbox's node too.
 * The fan-out (redis-fan-out.ts) reads the stream and queues each entry for the endpoints.
 *
 * After the entries are written, each conversation's queued mark is raised (queued-1.lua)
 * without waiting: a process that dies before that leaves the mark low, and the reconcile
 * pass queues those changes again under the same ids (a duplicate the delivery queue drops).
 */
export class RedisOutbox implements ChangeSink {
  private readonly logger = new Logger('RedisOutbox');
  private readonly writes: AcknowledgedWrites;
  readonly stream: string;

  constructor(
    private readonly connection: RedisStoreConnection,
    private readonly options: RedisOutboxOptions = {},
  ) {
    this.writes = new AcknowledgedWrites(
      connection,
      options.waitReplicas ?? 0,
      options.waitTimeoutMs ?? 500,
    );
    this.stream = connection.keys.webhookOutbox;
  }

  async changed(changes: TappedChange[]): Promise<void> {
    await this.write(changes.map((change) => [CHANGE_FIELD, JSON.stringify(change)]));
    void this.raiseMarks(changes).catch((error: unknown) => {
      // The reconcile pass will queue them again: a duplicate, never a loss.
      this.logger.debug?.(`queued mark not raised: ${String(error)}`);
    });
  }

  /**
   * Writes the entries and waits for the marks: the reconcile pass's and the sweeper's way,
   * which must know the mark moved before going on.
   */
  async queue(changes: TappedChange[]): Promise<void> {
    await this.write(changes.map((change) => [CHANGE_FIELD, JSON.stringify(change)]));
    await this.raiseMarks(changes);
  }

  /** The eviction's events (transcript parts, then conversation.evicted), one entry each. */
  async evicted(conversations: EvictedConversation[]): Promise<void> {
    const transcript = this.wantsTranscripts();
    const events: WebhookEvent[] = conversations.flatMap((evicted) =>
      evictionEvents(evicted, transcript),
    );
    await this.write(events.map((event) => [EVENT_FIELD, JSON.stringify(event)]));
  }

  wantsTranscripts(): boolean {
    return this.options.wantsTranscripts?.() ?? false;
  }

  /** One XADD per entry, together (one round trip on one Redis). */
  private async write(entries: [string, string][]): Promise<void> {
    await Promise.all(
      entries.map(([field, value]) =>
        this.writes.write((commands) => commands.xadd(this.stream, '*', field, value)),
      ),
    );
  }

  private async raiseMarks(changes: TappedChange[]): Promise<void> {
    const byConversation = new Map<string, { life: number; seqs: number[] }>();
    for (const change of changes) {
      const key = `${change.conversationId} ${change.life}`;
      const entry = byConversation.get(key) ?? { life: change.life, seqs: [] };
      entry.seqs.push(change.seq);
      byConversation.set(key, entry);
    }
    const now = Date.now();
    await Promise.all(
      [...byConversation].map(([key, { life, seqs }]) =>
        markQueued(this.connection, key.slice(0, key.indexOf(' ')), life, seqs, now),
      ),
    );
  }
}
