import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import {
  hasUnqueued,
  markQueued,
  QueuedMark,
  readQueuedMark,
  unqueuedChanges,
} from '../../conversations/repositories/redis/queued-mark';
import { RedisStoreConnection } from '../../conversations/repositories/redis/redis-connection';
import { DeliveryObserver, SILENT_OBSERVER } from '../delivery-policy';
import { RedisOutbox } from './redis-outbox';

export interface ReconcileOptions {
  /** How often a pass runs (WEBHOOK_RECONCILE_MS). */
  everyMs: number;
  /**
   * A conversation is looked at once its last change is this old, so a request still on its
   * way to its outbox write is not raced (a race only makes a duplicate, dropped downstream).
   */
  graceMs?: number;
  /** How long the lock lives if its holder dies mid-pass. */
  lockMs?: number;
  /** Conversations of the whole activity index looked at per pass, besides the recent ones. */
  sliceSize?: number;
  /** The first pass (no earlier pass recorded) looks back this far. */
  firstLookBackMs?: number;
}

/** Conversations read at once. */
const CONCURRENCY = 50;

/** What one pass did. */
export interface ReconcileResult {
  /** Conversations with changes queued. */
  conversations: number;
  /** Changes queued. */
  queued: number;
  /** Changes lost: applied, never queued, and gone from the replay buffer. */
  lost: number;
}

/**
 * The reconcile pass: queues the changes that were applied but never queued (a process that
 * died between a write and its outbox entry, or whose outbox write failed). One instance at
 * a time (a lock with a token and an expiry, like the sweeper's), every WEBHOOK_RECONCILE_MS.
 *
 * Which conversations: those active since the last pass began, less a margin, from the
 * inbox's activity index ({ix:act:<b>}); and a slice of the whole index per pass, in turn,
 * since a process that died right after its script did not move that index either. The
 * sweeper queues what is missing before it evicts, so nothing unqueued outlives its
 * conversation unseen. For each, the queued mark (queued-mark.ts) says what is missing; the
 * missing changes are rebuilt from the replay buffer and queued under their own ids, then the
 * mark moves past them. A change the buffer no longer holds is logged and counted as lost.
 */
export class RedisReconcile {
  private readonly logger = new Logger('RedisReconcile');
  private readonly graceMs: number;
  private readonly lockMs: number;
  private readonly sliceSize: number;
  private readonly firstLookBackMs: number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  /** Where the slice of the whole index stands: a bucket and a rank in it. */
  private slice = { bucket: 0, offset: 0 };

  constructor(
    private readonly connection: RedisStoreConnection,
    private readonly outbox: RedisOutbox,
    private readonly options: ReconcileOptions,
    private readonly observer: DeliveryObserver = SILENT_OBSERVER,
  ) {
    this.graceMs = options.graceMs ?? 2_000;
    this.lockMs = options.lockMs ?? 60_000;
    this.sliceSize = options.sliceSize ?? 500;
    this.firstLookBackMs = options.firstLookBackMs ?? 10 * 60_000;
  }

  start(): void {
    if (this.timer) {
      return;
    }
    this.timer = setInterval(() => {
      if (this.running) {
        return;
      }
      this.running = this.pass()
        .catch((error: unknown) =>
          this.logger.warn(
            `Reconcile pass failed: ${error instanceof Error ? error.message : String(error)}`,
          ),
        )
        .finally(() => {
          this.running = null;
        });
    }, this.options.everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
    await this.running;
  }

  /** One pass; null while another instance holds the lock. */
  async pass(now = Date.now()): Promise<ReconcileResult | null> {
    const { commands, keys } = this.connection;
    const token = randomUUID();
    const locked = await this.run(() =>
      commands.set(keys.reconcileLock, token, 'PX', this.lockMs, 'NX'),
    );
    if (locked !== 'OK') {
      return null;
    }
    const result: ReconcileResult = { conversations: 0, queued: 0, lost: 0 };
    try {
      const last = await this.run(() => commands.get(keys.reconciledAt));
      const from =
        last === null
          ? now - this.firstLookBackMs
          : Number(last) - this.graceMs - this.options.everyMs;
      const ids = new Set<string>([...(await this.recent(from)), ...(await this.nextSlice())]);
      const list = [...ids];
      for (let i = 0; i < list.length; i += CONCURRENCY) {
        await Promise.all(
          list.slice(i, i + CONCURRENCY).map((id) => this.reconcileOne(id, now, result)),
        );
      }
      await this.run(() => commands.set(keys.reconciledAt, now));
    } finally {
      await this.run(() => commands.chatDeleteIf(keys.reconcileLock, token));
    }
    return result;
  }

  /** Conversations active since `from` (the activity index, every bucket). */
  private async recent(from: number): Promise<string[]> {
    const { commands, keys } = this.connection;
    const buckets = await this.run(() =>
      Promise.all(
        keys.inboxBuckets('act').map((bucket) => commands.zrangebyscore(bucket, from, '+inf')),
      ),
    );
    return buckets.flat();
  }

  /** The next slice of the whole activity index, bucket after bucket. */
  private async nextSlice(): Promise<string[]> {
    const { commands, keys } = this.connection;
    const buckets = keys.inboxBuckets('act');
    const { bucket, offset } = this.slice;
    const ids = await this.run(() =>
      commands.zrange(buckets[bucket], offset, offset + this.sliceSize - 1),
    );
    this.slice =
      ids.length < this.sliceSize
        ? { bucket: (bucket + 1) % buckets.length, offset: 0 }
        : { bucket, offset: offset + this.sliceSize };
    return ids;
  }

  private async reconcileOne(id: string, now: number, result: ReconcileResult): Promise<void> {
    const read = await readQueuedMark(this.connection, id);
    if (!read || !hasUnqueued(read.mark) || !this.settled(read.mark, now)) {
      return;
    }
    const unqueued = await unqueuedChanges(this.connection, id, now, read);
    if (!unqueued) {
      return;
    }
    if (unqueued.lost) {
      const { from, to, count } = unqueued.lost;
      this.logger.warn(
        `Conversation ${id}: ${count} change(s) in seq ${from}..${to} were applied but never queued for webhooks, and are no longer in its replay buffer`,
      );
      this.observer.lost(count);
      result.lost += count;
    }
    if (unqueued.changes.length > 0) {
      await this.outbox.queue(unqueued.changes);
      result.conversations++;
      result.queued += unqueued.changes.length;
    }
    // Past every seq looked at, lost ones included: a loss is told once.
    const seqs: number[] = [];
    for (let seq = (read.mark.mark as number) + 1; seq <= unqueued.lastSeq; seq++) {
      seqs.push(seq);
    }
    await markQueued(this.connection, id, unqueued.life, seqs, now);
  }

  /**
   * Whether the missing changes are not merely on their way: its last change is older than
   * the grace, or later changes were queued while the mark stood still for longer than it
   * (a busy conversation whose earlier change's writer died).
   */
  private settled(mark: QueuedMark, now: number): boolean {
    return (
      now - mark.lastActivityAt >= this.graceMs ||
      (mark.done.size > 0 && now - mark.movedAt >= this.graceMs)
    );
  }

  private run<T>(command: () => Promise<T>): Promise<T> {
    return this.connection.run(command);
  }
}
