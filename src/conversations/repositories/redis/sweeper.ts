import { randomUUID } from 'node:crypto';
import { RedisInboxIndex } from './inbox-index';
import { RedisStoreConnection } from './redis-connection';
import { ScriptCode } from './script-codes';

/** Conversations asked for at once from an activity bucket during a sweep. */
const SWEEP_BATCH = 200;
/** How long the sweeper lock lives if its holder dies mid-sweep. */
const SWEEP_LOCK_MS = 60_000;
/**
 * How often a sweep sets the inbox indexes and counts again from the records (the first
 * sweep after an upgrade backfills them): what bounds a drift left by a process that died
 * between a change and its second step.
 */
export const REINDEX_EVERY_MS = 60 * 60_000;

/**
 * Eviction on Redis: one sweeper at a time across every instance (a lock with a token and an
 * expiry). The activity index is kept lazily: a conversation is indexed at its creation time,
 * and posts and deletes update only the conversation's own `a`. A sweep walks each activity
 * bucket from its oldest entry up to the cutoff, evicts those whose own last activity is old
 * too, and moves the others to their real last activity. So a write costs one script, and
 * each sweep visits what it evicts plus the conversations whose entry fell behind since (at
 * most once per TTL each). Each candidate is evicted by a script that re-checks its own last
 * activity, so an index entry left behind by a late update never evicts a live conversation.
 */
export class RedisSweeper {
  constructor(
    private readonly connection: RedisStoreConnection,
    private readonly inbox: RedisInboxIndex,
  ) {}

  /**
   * Evicts the conversations whose last activity is before `cutoff`; how many. Then the
   * conversation count is set from the index (see recountAfterSweep). 0 while another
   * instance sweeps.
   */
  async sweep(cutoff: number): Promise<number> {
    const { commands, keys } = this.connection;
    const token = randomUUID();
    const locked = await this.run(() =>
      commands.set(keys.sweeperLock, token, 'PX', SWEEP_LOCK_MS, 'NX'),
    );
    if (locked !== 'OK') {
      return 0; // another instance is sweeping
    }
    let conversations = 0;
    let messages = 0;
    try {
      for (const bucket of keys.activityBuckets()) {
        for (;;) {
          const ids = await this.run(() =>
            commands.zrangebyscore(bucket, '-inf', `(${cutoff}`, 'LIMIT', 0, SWEEP_BATCH),
          );
          if (ids.length === 0) {
            break;
          }
          const results = await Promise.all(ids.map((id) => this.evictOne(bucket, id, cutoff)));
          for (const removed of results) {
            if (removed !== null) {
              conversations++;
              messages += removed;
            }
          }
        }
      }
      await this.reindexWhenDue();
    } finally {
      try {
        await this.recountAfterSweep(messages);
      } finally {
        await this.run(() => commands.chatDeleteIf(keys.sweeperLock, token));
      }
    }
    return conversations;
  }

  /** Removes one candidate; the number of messages it held, or null when it stays. */
  private async evictOne(bucket: string, id: string, cutoff: number): Promise<number | null> {
    const { commands, keys } = this.connection;
    const [result, idleFrom, status, assignee] = await this.run(() =>
      commands.chatEvict(
        ...keys.conversation(id),
        ...keys.postKeys(id),
        cutoff,
        keys.channel(id),
        keys.inboxChannel,
        id,
      ),
    );
    if (result === ScriptCode.StillActive) {
      // Active after all (or snoozed): its index entry was behind. Put it right, so the
      // sweep moves on.
      await this.run(() => commands.zadd(bucket, 'GT', idleFrom, id));
      return null;
    }
    await this.run(() => commands.zrem(bucket, id));
    // Out of the inbox indexes and counts too (a second step, as for every change).
    await this.inbox.evicted(
      id,
      result === ScriptCode.ConversationNotFound
        ? null
        : {
            status: (status ?? 'open') as 'open',
            assignee: assignee ?? '',
            snoozedUntil: 0,
          },
    );
    return result === ScriptCode.ConversationNotFound ? null : result;
  }

  /**
   * The conversation count is set to the activity index's size (every conversation has one
   * entry; entries for nothing have just been dropped up to the cutoff), so a place that a
   * create could not give back (Redis stopped answering, its process died) is free again
   * after one sweep. The buckets' sizes are read, never the keyspace. A create between a
   * bucket's ZCARD and the HSET may be left out until the next sweep.
   */
  private async recountAfterSweep(messagesEvicted: number): Promise<void> {
    const { commands, keys, redis } = this.connection;
    const sizes = await this.run(() =>
      Promise.all(keys.activityBuckets().map((bucket) => commands.zcard(bucket))),
    );
    const indexed = sizes.reduce((sum, size) => sum + size, 0);
    await this.run(() =>
      redis
        .multi()
        .hset(keys.meta, 'conversations', indexed)
        .hincrby(keys.meta, 'messages', -messagesEvicted)
        .exec(),
    );
  }

  /**
   * The inbox indexes and counts set again from the records, under the sweeper lock: once
   * (`inboxIndexed` absent: records from before the inbox), then every REINDEX_EVERY_MS.
   */
  private async reindexWhenDue(): Promise<void> {
    const { commands, keys } = this.connection;
    const [indexed, at] = await this.run(() =>
      commands.hmget(keys.meta, 'inboxIndexed', 'inboxReindexedAt'),
    );
    const now = Date.now();
    if (indexed && now - Number(at ?? 0) < REINDEX_EVERY_MS) {
      return;
    }
    await this.inbox.reindex(keys.activityBuckets());
    await this.run(() => commands.hset(keys.meta, 'inboxIndexed', 1, 'inboxReindexedAt', now));
  }

  private run<T>(command: () => Promise<T>): Promise<T> {
    return this.connection.run(command);
  }
}
