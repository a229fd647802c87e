import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { ChangeOutbox, EvictedConversation } from '../../change-outbox';
import { conversationSummaryJson } from '../../dto/conversation.mapper';
import { redisHeader, REDIS_HEADER_FIELDS } from '../../records/conversation.codec';
import { keptMessageJson } from '../../records/message.codec';
import { RedisInboxIndex } from './inbox-index';
import { markQueued, readQueuedMark, unqueuedChanges } from './queued-mark';
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
/** Messages read at once for an evicted conversation's transcript. */
const TRANSCRIPT_PAGE = 500;
/** Conversations whose transcripts are held at once during a sweep (bounded memory). */
const TRANSCRIPT_CONCURRENCY = 4;
/** Digits of the seq that prefixes each member of a conversation's message set. */
const SEQ_DIGITS = 10;

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
  private readonly logger = new Logger('RedisSweeper');

  constructor(
    private readonly connection: RedisStoreConnection,
    private readonly inbox: RedisInboxIndex,
    private readonly outbox: ChangeOutbox = new ChangeOutbox(),
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
          const results = await this.evictAll(bucket, ids, cutoff);
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

  /**
   * Evicts a batch of candidates. With a sink for the webhooks, each is told (see
   * evictTold); while transcripts are wanted, a few at a time, since each holds its messages.
   */
  private async evictAll(
    bucket: string,
    ids: string[],
    cutoff: number,
  ): Promise<(number | null)[]> {
    if (!this.outbox.active) {
      return Promise.all(ids.map((id) => this.evictOne(bucket, id, cutoff)));
    }
    const transcripts = this.outbox.wantsTranscripts();
    const step = transcripts ? TRANSCRIPT_CONCURRENCY : ids.length;
    const results: (number | null)[] = [];
    for (let i = 0; i < ids.length; i += step) {
      results.push(
        ...(await Promise.all(
          ids.slice(i, i + step).map((id) => this.evictTold(bucket, id, cutoff, transcripts)),
        )),
      );
    }
    return results;
  }

  /**
   * Evicts one candidate for a sink that takes evictions. Before: the changes it applied but
   * never queued (a process died between a write and its outbox entry) are queued, since its
   * replay buffer goes with it; if that fails it stays for the next sweep. Its summary, and its
   * messages if a transcript is wanted (in pages), are read too. After the script removed it,
   * the eviction is told; a conversation the script refused (active meanwhile) tells nothing.
   * The messages read are its last: every change is activity, which the script re-checks.
   */
  private async evictTold(
    bucket: string,
    id: string,
    cutoff: number,
    transcript: boolean,
  ): Promise<number | null> {
    const now = Date.now();
    let told: EvictedConversation | null = null;
    try {
      const read = await readQueuedMark(this.connection, id);
      if (read && read.mark.lastActivityAt < cutoff) {
        const unqueued = await unqueuedChanges(this.connection, id, now, read);
        if (unqueued && (unqueued.changes.length > 0 || unqueued.lost)) {
          if (unqueued.lost) {
            this.logger.warn(
              `Conversation ${id}: changes ${unqueued.lost.from}..${unqueued.lost.to} were applied but never queued for webhooks, and are no longer in its replay buffer (${unqueued.lost.count} lost)`,
            );
          }
          await this.outbox.changed(unqueued.changes);
          const seqs: number[] = [];
          for (let seq = Math.max(read.mark.mark ?? 0, -1) + 1; seq <= unqueued.lastSeq; seq++) {
            seqs.push(seq);
          }
          await markQueued(this.connection, id, unqueued.life, seqs, now);
        }
        const header = redisHeader(id, read.values.slice(0, REDIS_HEADER_FIELDS.length));
        if (header) {
          told = {
            conversationId: id,
            life: header.life,
            lastSeq: header.version,
            summary: conversationSummaryJson(header, now),
            messagesJson: transcript ? await this.messagesOf(id) : [],
            at: now,
          };
        }
      }
    } catch (error) {
      this.logger.warn(
        `Conversation ${id} stays for the next sweep: its webhook events could not be prepared (${error instanceof Error ? error.message : String(error)})`,
      );
      return null;
    }
    const removed = await this.evictOne(bucket, id, cutoff);
    if (removed !== null && told) {
      try {
        await this.outbox.evicted([told]);
      } catch (error) {
        // The conversation is gone: its eviction events cannot be made again.
        this.logger.warn(
          `Conversation ${id} was evicted, but its conversation.evicted could not be queued for webhooks (${error instanceof Error ? error.message : String(error)})`,
        );
      }
    }
    return removed;
  }

  /** A conversation's standing messages, ascending seq, read in pages. */
  private async messagesOf(id: string): Promise<string[]> {
    const { commands, keys } = this.connection;
    const messages: string[] = [];
    let after = 0;
    for (;;) {
      const page = await this.run(() =>
        commands.chatPage(...keys.conversation(id), 'after', after, TRANSCRIPT_PAGE),
      );
      if (!page) {
        return messages;
      }
      const [more, members] = page;
      for (const member of members) {
        messages.push(keptMessageJson(member.slice(SEQ_DIGITS)));
      }
      if (more !== 1 || members.length === 0) {
        return messages;
      }
      after = Number(members[members.length - 1].slice(0, SEQ_DIGITS));
    }
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
