/**
 * The Redis key layout, ready for Redis Cluster: every key of one conversation carries the
 * conversation's id as its hash tag, so the scripts that change a conversation touch one
 * slot; the activity index is split into ACTIVITY_BUCKETS sorted sets with tags of their own,
 * so no single key takes every write.
 *
 *   <prefix>{<id>}:conv      hash  the conversation's record, a field each (CONVERSATION_FIELDS
 *                                 in records/conversation.codec.ts: c createdAt, s last seq, ...),
 *                                 and the webhooks' queued mark (queued-1.lua): w every change up
 *                                 to this seq has an outbox entry (-1: not even its creation), wd
 *                                 the seqs queued above w + 1, wt when w last moved
 *   <prefix>{<id>}:msgs      zset  score timestamp, member <seq, 10 digits><its MessageJson>
 *   <prefix>{<id>}:seq       zset  score seq, member as in msgs: the messages in seq order, for pages
 *   <prefix>{<id>}:ids       hash  message id -> its seq
 *   <prefix>{<id>}:events    stream  the last EVENT_REPLAY_LIMIT changes, entry id <seq>-0,
 *                                 fields t (c created, d deleted, r read, u updated) and d (the event's JSON)
 *   <prefix>{<id>}:idem      hash  keyed post's scoped key digest -> "<fingerprint> <message JSON>"
 *   <prefix>{<id>}:idemx     zset  score when that key expires, member the key digest
 *   <prefix>{activity:<b>}   zset  score last activity known to the index (never later than
 *                                 the real one), member conversation id (b = 0..15)
 *   <prefix>{ix:act:<b>}     zset  the inbox's activity index: score lastActivityAt, member id
 *   <prefix>{ix:wait:<b>}    zset  the waiting queue: score waitingSince, only those waiting
 *   <prefix>{ix:snooze:<b>}  zset  snoozes due: score snoozedUntil, only those snoozed
 *   <prefix>{ix:as:<assignee>} zset  one assignee's conversations: score lastActivityAt
 *   <prefix>{ix:counts}      hash  how many per status and assigned or not (see inbox-index.ts)
 *   <prefix>{meta}           hash  conversations, messages: what the store holds; inboxIndexed
 *                                 once the inbox indexes were backfilled; inboxRecountAt
 *   <prefix>{meta}:waker     string  the wake lock (wakeSnoozed): a random token, short expiry
 *   <prefix>{meta}:sweeper   string  the sweeper lock: a random token, with an expiry
 *   <prefix>{meta}:reconciler string the webhooks' reconcile lock, as the sweeper's
 *   <prefix>{meta}:reconciled string when the last reconcile pass began (ms)
 *   <prefix>{wh}:outbox      stream  the webhooks' outbox: one entry per applied change (`c`: the
 *                                 TappedChange's JSON) or eviction event (`e`: the WebhookEvent's
 *                                 JSON), read by the consumer group `fanout` (src/webhooks/redis/)
 *   <prefix>rl:{<key>}       string  a rate-limit counter, expiring with its window
 *   <prefix>rl:{<key>}:block string  present while that counter is blocked, expiring with the block
 *
 * Changes are also published on the channel <prefix>events:{<id>} as "<seq> <type> <JSON>",
 * and typing signals, which have no seq, as "typing <JSON>". The inbox feed is one plain
 * channel, <prefix>inbox: "<type> <id>" for every create, change and eviction.
 */
export const ACTIVITY_BUCKETS = 16;

/** The inbox's indexes, bucketed as the activity index is (see inbox-index.ts). */
export type InboxIndexName = 'act' | 'wait' | 'snooze';

/** A conversation's bucket, from its id (which is random), in every bucketed index. */
function bucketOf(id: string): number {
  let hash = 0;
  for (let i = 0; i < id.length; i++) {
    hash = (hash * 31 + id.charCodeAt(i)) | 0;
  }
  return Math.abs(hash) % ACTIVITY_BUCKETS;
}

export class RedisKeys {
  readonly meta: string;
  readonly sweeperLock: string;
  readonly wakeLock: string;
  readonly inboxChannel: string;
  readonly inboxCounts: string;
  readonly webhookOutbox: string;
  readonly reconcileLock: string;
  readonly reconciledAt: string;

  constructor(private readonly prefix: string) {
    this.meta = `${prefix}{meta}`;
    this.sweeperLock = `${prefix}{meta}:sweeper`;
    this.wakeLock = `${prefix}{meta}:waker`;
    this.inboxChannel = `${prefix}inbox`;
    this.inboxCounts = `${prefix}{ix:counts}`;
    this.webhookOutbox = `${prefix}{wh}:outbox`;
    this.reconcileLock = `${prefix}{meta}:reconciler`;
    this.reconciledAt = `${prefix}{meta}:reconciled`;
  }

  /** A conversation's bucket in one of the inbox indexes (act, wait, snooze). */
  inboxIndex(name: InboxIndexName, id: string): string {
    return this.inboxBucket(name, bucketOf(id));
  }

  /** One assignee's conversations by activity (see inbox-index.ts). */
  inboxAssignee(assignee: string): string {
    return `${this.prefix}{ix:as:${assignee}}`;
  }

  inboxBuckets(name: InboxIndexName): string[] {
    return Array.from({ length: ACTIVITY_BUCKETS }, (_, b) => this.inboxBucket(name, b));
  }

  private inboxBucket(name: InboxIndexName, b: number): string {
    return `${this.prefix}{ix:${name}:${b}}`;
  }

  /** The keys of one conversation, in the order its scripts take them. */
  conversation(id: string): [string, string, string, string, string] {
    const tag = `${this.prefix}{${id}}`;
    return [`${tag}:conv`, `${tag}:msgs`, `${tag}:ids`, `${tag}:events`, `${tag}:seq`];
  }

  /** A conversation's kept keyed posts and their expiry times (in its slot). */
  postKeys(id: string): [string, string] {
    const tag = `${this.prefix}{${id}}`;
    return [`${tag}:idem`, `${tag}:idemx`];
  }

  /** A rate-limit counter and its block. */
  hitCounter(key: string): [string, string] {
    const counter = `${this.prefix}rl:{${key}}`;
    return [counter, `${counter}:block`];
  }

  /** The pub/sub channel of a conversation's changes. */
  channel(id: string): string {
    return `${this.prefix}events:{${id}}`;
  }

  /** The conversation id of a channel() name. */
  conversationOf(channel: string): string {
    return channel.slice(this.prefix.length + 'events:{'.length, -1);
  }

  /** The activity bucket of a conversation: from its id, which is random. */
  activity(id: string): string {
    return this.bucket(bucketOf(id));
  }

  activityBuckets(): string[] {
    return Array.from({ length: ACTIVITY_BUCKETS }, (_, b) => this.bucket(b));
  }

  private bucket(b: number): string {
    return `${this.prefix}{activity:${b}}`;
  }
}
