import { Logger } from '@nestjs/common';
import { ChangeOutbox, TappedChange } from '../../change-outbox';
import { randomUUID } from 'node:crypto';
import { OnApplicationShutdown } from '@nestjs/common';
import { Cluster } from 'ioredis';
import { StoreError } from '../../../common/errors/store-error';
import { conversationSummaryJson } from '../../dto/conversation.mapper';
import {
  asCreated,
  customerTokenFromRedis,
  historyOf,
  CONVERSATION_FIELDS,
  drawLife,
  headerFromRedis,
  withOldCounters,
  newConversation,
  REDIS_HEADER_FIELDS,
  REDIS_TOKEN_FIELDS,
  redisHashOf,
  redisHeader,
  redisStateOf,
  redisTokenOf,
  ConversationHeader,
} from '../../records/conversation.codec';
import {
  failsIfMatch,
  patchedState,
  stateChangeJson,
  StateField,
  StateRefusal,
  StoredState,
  wokenAt,
} from '../../records/conversation-state';
import {
  AppendedMessage,
  keptMessageJson,
  messageJsonAroundSeq,
  messageJsonWithSeq,
} from '../../records/message.codec';
import {
  ChangeListener,
  ChangesAfter,
  ConversationHistory,
  ConversationRepository,
  CreatedConversation,
  DeletedMessage,
  MessagePage,
  NewConversation,
  NewMessage,
  PageQuery,
  ReadReceipt,
  ReadState,
  StoredCustomerToken,
  StoreStats,
  TypingSignal,
  HistoryVersion,
  UnchangedHistory,
  Watch,
  StateUpdate,
  StateUpdated,
  InboxQuery,
  InboxPage,
  InboxCounts,
  InboxListener,
} from '../../conversation.repository';
import { IndexedState, RedisInboxIndex } from './inbox-index';
import { InboxFeed } from './inbox-feed';
import { HISTORY_CACHE_CHARS, HistoryCache } from '../history-cache';
import { historyPieces } from '../history-pieces';
import { Acknowledged, AcknowledgedWrites } from './acknowledged-writes';
import { decodePayload, decodeStreamEntry, typingPayload } from './change-codec';
import { MessageCountFlusher } from './count-flusher';
import { RedisClient, RedisStoreConnection, ScriptedRedis } from './redis-connection';
import { RedisKeys } from './redis-keys';
import { Watchers } from '../watchers';
import { refuse, ScriptCode } from './script-codes';
import {
  ChannelSubscriber,
  ConnectionSubscriber,
  ShardSubscribers,
  SubscriberEvents,
} from './redis-subscribers';
import { RedisSweeper } from './sweeper';

/** Digits of the seq that prefixes each member of a conversation's message set. */
const SEQ_DIGITS = 10;

/** A member of a conversation's message sets (`msgs`, `seq`): the seq, then the message's text. */
const messageJsonOf = (member: string) => keptMessageJson(member.slice(SEQ_DIGITS));

export interface RedisStoreOptions {
  /** Changes kept per conversation for event replay (EVENT_REPLAY_LIMIT). */
  replayLimit?: number;
  /** Replicas that must have a write before it is acknowledged (REDIS_WAIT_REPLICAS). */
  waitReplicas?: number;
  /** How long a write waits for them (REDIS_WAIT_TIMEOUT_MS). */
  waitTimeoutMs?: number;
  /**
   * The longest a call may take, redirections and retries during a failover included
   * (STORE_TIMEOUT_MS); one Redis's client bounds each command itself.
   */
  timeoutMs?: number;
  /** A cached history not read for this long is dropped (CONVERSATION_TTL_MS; none: kept). */
  historyIdleMs?: number;
  /** Told every change applied, awaited before the write answers (see change-outbox.ts). */
  outbox?: ChangeOutbox;
}

/** The conversation hash's fields of the webhooks' queued mark (see redis-keys.ts). */
const QUEUED_MARK = 'w';
const QUEUED_AT = 'wt';

/** A change as the outbox takes it. */
function tapped(
  conversationId: string,
  life: number,
  seq: number,
  type: TappedChange['type'],
  data: string,
  at: number,
): TappedChange {
  return { conversationId, life, seq, type, data, at };
}

/** How many times a state change reads again after losing its compare-and-set (update-5.lua). */
const STATE_ATTEMPTS = 64;
/** How long the wake lock lives if its holder dies mid-wake. */
const WAKE_LOCK_MS = 5_000;
/** Due snoozes read at once from a bucket of the due index. */
const WAKE_BATCH = 200;

/** What the indexes and counts know of a state. */
const indexedOf = (state: StoredState): IndexedState => ({
  status: state.status,
  assignee: state.assignee,
  snoozedUntil: state.snoozedUntil,
});

/** What the create script answers (see create-5.lua). */
type CreateAnswer = Awaited<ReturnType<ScriptedRedis['chatCreate']>>;

/** What the get script answers: the record's REDIS_HEADER_FIELDS, then the members if asked. */
type RawHistory = Awaited<ReturnType<ScriptedRedis['chatGet']>>;

/**
 * The store in Redis, shared by every process of every instance, on one Redis or a Redis
 * Cluster. Each conversation's keys carry its id as hash tag, so its Lua scripts (atomic)
 * touch one slot, and every command touches one slot; the activity index and the counters
 * live under their own tags (see RedisKeys). Changes travel by sharded pub/sub (SPUBLISH
 * inside the scripts): in a cluster, only within the conversation's shard. Eviction is the
 * RedisSweeper's (sweeper.ts), the store-wide message count the MessageCountFlusher's
 * (count-flusher.ts), and writes that wait for replicas go through AcknowledgedWrites
 * (acknowledged-writes.ts).
 */
export class RedisConversationRepository
  extends ConversationRepository
  implements OnApplicationShutdown
{
  readonly kind: 'redis' | 'redis-cluster';
  /** The client, its scripts and key layout, shared with this process's RedisRateLimitStore. */
  readonly connection: RedisStoreConnection;
  private readonly redis: RedisClient;
  private readonly commands: ScriptedRedis;
  private readonly keys: RedisKeys;
  private readonly replayLimit: number;
  private readonly writes: AcknowledgedWrites;
  private readonly sweeper: RedisSweeper;
  private readonly messageCount: MessageCountFlusher;
  private readonly histories: HistoryCache;
  private readonly inbox: RedisInboxIndex;
  /** Where applied changes go for the webhooks (see change-outbox.ts). */
  private readonly outbox: ChangeOutbox;
  private feed: InboxFeed | null = null;

  private readonly watchers = new Watchers();
  /** The sharded pub/sub subscriptions (see ChannelSubscriber), made on the first watch. */
  private subscriber: ChannelSubscriber | null = null;
  /** The subscriber connections' name in CLIENT LIST. */
  private readonly subscriberName: string;
  /** Each watched conversation's SUBSCRIBE: pending, or confirmed on this connection. */
  private readonly subscriptions = new Map<string, Promise<void>>();

  /**
   * @param redis a client that fails commands fast while disconnected (see connectRedis and
   *   connectRedisCluster)
   * @param where the Redis URL or cluster seeds without credentials, for error messages
   */
  constructor(
    redis: RedisClient,
    prefix: string,
    private readonly where: string,
    options: RedisStoreOptions = {},
  ) {
    super();
    this.connection = new RedisStoreConnection(redis, prefix, where, options.timeoutMs ?? 5_000);
    this.redis = redis;
    this.commands = this.connection.commands;
    this.keys = this.connection.keys;
    this.kind = redis instanceof Cluster ? 'redis-cluster' : 'redis';
    this.replayLimit = options.replayLimit ?? 1_000;
    this.writes = new AcknowledgedWrites(
      this.connection,
      options.waitReplicas ?? 0,
      options.waitTimeoutMs ?? 500,
    );
    this.inbox = new RedisInboxIndex(this.connection);
    this.outbox = options.outbox ?? new ChangeOutbox();
    this.sweeper = new RedisSweeper(this.connection, this.inbox, this.outbox);
    this.messageCount = new MessageCountFlusher(this.connection);
    this.subscriberName = `${prefix}sub`;
    this.histories = new HistoryCache(HISTORY_CACHE_CHARS, options.historyIdleMs ?? Infinity);
  }

  /**
   * Three steps, each on its own slot, in this order: a capacity place ({meta}), the index
   * entry (an activity bucket), then the conversation. The record is made only by an attempt
   * that holds a place, so it is never made and then undone for want of one: a keyed create's
   * twin that answers "replayed" answers a conversation that stands. The index entry comes
   * before the record, so none is ever stored without being findable by the sweeper: a process
   * that dies in between leaves at most an index entry for nothing, which the next sweep
   * drops. `LT`: an entry is only ever moved back, so a retry never moves a live
   * conversation's entry forward.
   *
   * A create without a key has a random id, so its place and its entry are asked for at once,
   * and a refusal removes the entry. A keyed create's id comes from its key, so a twin may be
   * making it right now: its entry is written only once it holds a place, and never removed
   * (a refused twin would remove the maker's). Without a place it can still be a retry: the
   * script answers the conversation if an earlier attempt made it.
   *
   * The place is given back as soon as the outcome is known not to need it (the conversation
   * existed, the key was reused, or no record was made), a 503 replication_timeout included:
   * the script answered, only its WAIT fell short. What stays unknown (Redis stopped
   * answering) is put right by the next sweep, which sets the count from the index.
   */
  async createConversation(input: NewConversation): Promise<CreatedConversation> {
    const { id } = input;
    const reserved = input.idempotency
      ? await this.reserveKeyed(input)
      : await this.reserveUnkeyed(input);
    const keys = this.keys.conversation(id);
    const record = newConversation(input, drawLife());
    let answer: Acknowledged<CreateAnswer>;
    try {
      answer = await this.writes.acknowledged((commands) =>
        commands.chatCreate(
          ...keys,
          record.createKey,
          reserved ? 1 : 0,
          ...redisTokenOf(record),
          this.keys.inboxChannel,
          id,
          ...redisHashOf(record, 0),
          // The webhooks' queued mark (see redis-keys.ts): -1, conversation.created not queued.
          ...(this.outbox.active ? [QUEUED_MARK, -1, QUEUED_AT, input.now] : []),
        ),
      );
    } catch (error) {
      // No answer: the script may or may not have run.
      if (input.idempotency) {
        await this.settleUnanswered(id, record.life, reserved);
      } else {
        await this.undoCreate(id, keys, reserved);
      }
      throw error;
    }
    const [code, createdAt] = answer.result;
    if (reserved && code !== ScriptCode.Done) {
      await this.giveBackPlace();
    }
    if (answer.unconfirmed) {
      throw answer.unconfirmed; // the write stands: a keyed retry replays it
    }
    switch (code) {
      case ScriptCode.Done:
        await Promise.all([
          this.inbox.changed(id, {
            lastActivityAt: record.lastActivityAt,
            assignee: record.assignee,
            to: indexedOf(record),
          }),
          this.outbox.active
            ? this.tell([
                {
                  conversationId: id,
                  life: record.life,
                  seq: 0,
                  type: 'conversation.created',
                  data: conversationSummaryJson(historyOf(record, 0, null), input.now),
                  at: input.now,
                },
              ])
            : null,
        ]);
        return asCreated(record);
      case ScriptCode.ConversationNotFound:
        throw new StoreError('capacity_exceeded');
      case ScriptCode.KeyReused:
        throw new StoreError('idempotency_key_reused');
      default:
        return { ...asCreated(record, Number(createdAt)), replayed: true };
    }
  }

  /** A place and the index entry at once; refused, the entry goes. True when a place is held. */
  private async reserveUnkeyed(input: NewConversation): Promise<boolean> {
    const { id, now } = input;
    const [place, entry] = await Promise.allSettled([
      this.run(() => this.commands.chatReserve(this.keys.meta, input.maxConversations)),
      this.run(() => this.commands.zadd(this.keys.activity(id), 'LT', now, id)),
    ]);
    const reserved = place.status === 'fulfilled' && place.value === ScriptCode.Done;
    if (place.status === 'rejected' || entry.status === 'rejected' || !reserved) {
      await this.undoCreate(id, [], reserved);
      throw place.status === 'rejected'
        ? place.reason
        : entry.status === 'rejected'
          ? entry.reason
          : new StoreError('capacity_exceeded');
    }
    return true;
  }

  /** A place, then the index entry if one was had (see createConversation). */
  private async reserveKeyed(input: NewConversation): Promise<boolean> {
    const { id, now } = input;
    const place = await this.run(() =>
      this.commands.chatReserve(this.keys.meta, input.maxConversations),
    );
    if (place !== ScriptCode.Done) {
      return false;
    }
    try {
      await this.run(() => this.commands.zadd(this.keys.activity(id), 'LT', now, id));
    } catch (error) {
      await this.giveBackPlace();
      throw error;
    }
    return true;
  }

  /**
   * A keyed create whose script gave no answer: its record is there with this attempt's life
   * when the script ran and made it, and then it keeps its place; otherwise it gives the place
   * back. If Redis does not answer this either, the next sweep's count puts it right.
   */
  private async settleUnanswered(id: string, life: number, reserved: boolean): Promise<void> {
    if (!reserved) {
      return;
    }
    const [conv] = this.keys.conversation(id);
    try {
      const made = await this.run(() => this.commands.hget(conv, CONVERSATION_FIELDS.life.redis));
      if (made !== String(life)) {
        await this.giveBackPlace();
      }
    } catch {
      // unknown still
    }
  }

  private async giveBackPlace(): Promise<void> {
    await this.commands.hincrby(this.keys.meta, 'conversations', -1).catch(() => undefined);
  }

  /** Removes what a create without a key got through (`keys`: its record's, if made). */
  private async undoCreate(id: string, keys: string[], reserved: boolean): Promise<void> {
    await Promise.all([
      keys.length > 0 ? this.commands.del(...keys, ...this.keys.postKeys(id)) : null,
      this.commands.zrem(this.keys.activity(id), id),
      reserved ? this.giveBackPlace() : null,
    ]).catch(() => undefined);
  }

  /**
   * A history this process served before is confirmed with a plain HMGET of the record (no
   * script, the cheapest read Redis has); only when its version moved is the script asked for
   * the messages.
   */
  async getConversation(conversationId: string): Promise<ConversationHistory | null> {
    const cached = this.histories.get(conversationId);
    if (cached) {
      const [conv] = this.keys.conversation(conversationId);
      const values = await this.run(() => this.commands.hmget(conv, ...REDIS_HEADER_FIELDS));
      const history = headerFromRedis(conversationId, values, cached.pieces);
      if (!history) {
        this.histories.delete(conversationId);
        return null;
      }
      if (history.version === cached.version && history.life === cached.life) {
        return withOldCounters(history, values);
      }
    }
    const raw = await this.run<RawHistory>(() =>
      this.commands.chatGet(
        ...this.keys.conversation(conversationId),
        cached?.version ?? -1,
        cached?.life ?? -1,
        ...REDIS_HEADER_FIELDS,
      ),
    );
    const [values, members] = raw ?? [];
    const history = values && headerFromRedis(conversationId, values, cached?.pieces ?? []);
    if (!history) {
      this.histories.delete(conversationId);
      return null;
    }
    if (members) {
      history.messagesJson = historyPieces(members.length, (i) => messageJsonOf(members[i]));
      this.histories.set(conversationId, history, history.messagesJson);
    }
    return withOldCounters(history, values);
  }

  async getConversationIfChanged(
    conversationId: string,
    known: HistoryVersion,
  ): Promise<ConversationHistory | UnchangedHistory | null> {
    const raw = await this.run<RawHistory>(() =>
      this.commands.chatGet(
        ...this.keys.conversation(conversationId),
        known.version,
        known.life,
        ...REDIS_HEADER_FIELDS,
      ),
    );
    if (!raw) {
      return null;
    }
    const [values, members] = raw;
    if (!members) {
      return headerFromRedis(conversationId, values, null);
    }
    const history = headerFromRedis(
      conversationId,
      values,
      historyPieces(members.length, (i) => messageJsonOf(members[i])),
    );
    return history && withOldCounters(history, values);
  }

  async appendMessage(conversationId: string, input: NewMessage): Promise<AppendedMessage> {
    // The script puts the seq it assigns between the two halves.
    const [jsonHead, jsonTail] = messageJsonAroundSeq(conversationId, input);
    const keyed = input.idempotency;
    const answer = await this.writes.write((commands) =>
      commands.chatAppend(
        ...this.keys.conversation(conversationId),
        ...this.keys.postKeys(conversationId),
        input.id,
        jsonHead,
        jsonTail,
        input.timestamp,
        input.now,
        input.maxMessages,
        this.keys.channel(conversationId),
        this.replayLimit,
        keyed?.key ?? '',
        keyed?.fingerprint ?? '',
        keyed?.ttlMs ?? 0,
        input.sender,
        this.keys.inboxChannel,
        conversationId,
      ),
    );
    if (typeof answer === 'number') {
      refuse(answer);
      throw new StoreError('store_unavailable', `append-7.lua answered ${answer}`);
    }
    if (answer.length === 1) {
      return AppendedMessage.replayed(keptMessageJson(answer[0]));
    }
    const [seq, lastActivityAt, waitingSince, reopenedFrom, snoozedUntil, assignee, life, reopen] =
      answer;
    const json = messageJsonWithSeq(jsonHead, seq, jsonTail);
    this.messageCount.count(1);
    await Promise.all([
      this.inbox.changed(conversationId, {
        lastActivityAt,
        waitingSince,
        assignee,
        ...(reopenedFrom
          ? {
              from: { status: reopenedFrom as StoredState['status'], assignee, snoozedUntil },
              to: { status: 'open', assignee, snoozedUntil: 0 },
            }
          : {}),
      }),
      this.outbox.active
        ? this.tell(
            reopen
              ? [
                  tapped(conversationId, life, seq, 'message.created', json, input.now),
                  tapped(conversationId, life, seq + 1, 'conversation.updated', reopen, input.now),
                ]
              : [tapped(conversationId, life, seq, 'message.created', json, input.now)],
          )
        : null,
    ]);
    return AppendedMessage.posted(conversationId, input, seq, json);
  }

  async deleteMessage(
    conversationId: string,
    messageId: string,
    now: number,
  ): Promise<DeletedMessage> {
    const answer = await this.writes.write((commands) =>
      commands.chatDelete(
        ...this.keys.conversation(conversationId),
        messageId,
        now,
        this.keys.channel(conversationId),
        this.replayLimit,
        this.keys.inboxChannel,
        conversationId,
      ),
    );
    if (typeof answer === 'number') {
      refuse(answer);
      throw new StoreError('store_unavailable', `delete-5.lua answered ${answer}`);
    }
    const [seq, lastActivityAt, waitingSince, assignee, life, json] = answer;
    this.messageCount.count(-1);
    await Promise.all([
      this.inbox.changed(conversationId, { lastActivityAt, waitingSince, assignee }),
      this.outbox.active
        ? this.tell([tapped(conversationId, life, seq, 'message.deleted', json, now)])
        : null,
    ]);
    return { messageId, seq };
  }

  async markRead(conversationId: string, receipt: ReadReceipt): Promise<ReadState> {
    const [result, customer, agent, lastActivityAt, assignee, life, json] = await this.writes.write(
      (commands) =>
        commands.chatRead(
          ...this.keys.conversation(conversationId),
          receipt.sender,
          receipt.seq,
          receipt.now,
          this.keys.channel(conversationId),
          this.replayLimit,
          this.keys.inboxChannel,
          conversationId,
        ),
    );
    refuse(result);
    const lastRead = { customer: customer ?? 0, agent: agent ?? 0 };
    if (result === ScriptCode.Unchanged) {
      return { lastRead };
    }
    await Promise.all([
      this.inbox.changed(conversationId, {
        lastActivityAt: lastActivityAt ?? receipt.now,
        assignee: assignee ?? '',
      }),
      this.outbox.active
        ? this.tell([
            tapped(conversationId, life ?? 0, result, 'conversation.read', json ?? '', receipt.now),
          ])
        : null,
    ]);
    return { lastRead, seq: result };
  }

  /** Published on the conversation's channel, like its changes, but with no seq. */
  async sendTyping(signal: TypingSignal): Promise<void> {
    const [conv] = this.keys.conversation(signal.conversationId);
    const result = await this.run(() =>
      this.commands.chatTyping(
        conv,
        this.keys.channel(signal.conversationId),
        typingPayload(signal),
      ),
    );
    refuse(result);
  }

  /** See RedisSweeper. */
  evictInactive(cutoff: number): Promise<number> {
    return this.sweeper.sweep(cutoff);
  }

  async getPage(conversationId: string, query: PageQuery): Promise<MessagePage | null> {
    const mode =
      query.after !== undefined ? 'after' : query.before !== undefined ? 'before' : 'last';
    const raw = await this.run(() =>
      this.commands.chatPage(
        ...this.keys.conversation(conversationId),
        mode,
        query.after ?? query.before ?? 0,
        query.limit,
      ),
    );
    if (!raw) {
      return null;
    }
    const [more, members] = raw;
    return {
      messagesJson: `[${members.map(messageJsonOf).join(',')}]`,
      hasMore: more === 1,
    };
  }

  async customerToken(conversationId: string): Promise<StoredCustomerToken | null> {
    const [conv] = this.keys.conversation(conversationId);
    return customerTokenFromRedis(
      await this.run(() => this.commands.hmget(conv, ...REDIS_TOKEN_FIELDS)),
    );
  }

  async changesAfter(conversationId: string, afterSeq: number): Promise<ChangesAfter | null> {
    const raw = await this.run(() =>
      this.commands.chatChangesAfter(...this.keys.conversation(conversationId), afterSeq),
    );
    if (!raw) {
      return null;
    }
    const [lastSeq, complete, entries] = raw;
    return {
      lastSeq,
      complete: complete === 1,
      changes: entries.map((entry) => decodeStreamEntry(conversationId, entry)),
    };
  }

  /**
   * Subscribes to the conversation's channel while someone here watches it; every instance
   * that watches gets every change, whichever instance made it. Ready once Redis has
   * confirmed the SUBSCRIBE (a PUBLISH after that reaches this process); watches that come
   * while it is on its way wait for the same one.
   */
  watch(conversationId: string, listener: ChangeListener): Watch {
    const channel = this.keys.channel(conversationId);
    const stop = this.watchers.add(conversationId, listener, undefined, () => {
      this.subscriptions.delete(conversationId);
      this.subscriber?.unsubscribe(channel);
    });
    let ready = this.subscriptions.get(conversationId);
    if (!ready) {
      const subscriber = this.channelSubscriber();
      const subscribing = this.run(() => subscriber.subscribe(channel));
      // A failed SSUBSCRIBE is not kept: the next watch sends another.
      void subscribing.catch(() => {
        if (this.subscriptions.get(conversationId) === subscribing) {
          this.subscriptions.delete(conversationId);
        }
      });
      this.subscriptions.set(conversationId, subscribing);
      ready = subscribing;
    }
    return { ready, stop };
  }

  /** On a cluster it also asks a node for the cluster's state: not ok, the store is down. */
  async stats(): Promise<StoreStats> {
    await this.messageCount.flush();
    const [[conversations, messages], state] = await this.run(() =>
      Promise.all([
        this.commands.hmget(this.keys.meta, 'conversations', 'messages'),
        this.redis instanceof Cluster ? this.redis.cluster('INFO') : null,
      ]),
    );
    const clusterState = state === null ? 'ok' : /cluster_state:(\w+)/.exec(String(state))?.[1];
    if (clusterState !== 'ok') {
      throw new StoreError(
        'store_unavailable',
        `Redis Cluster at ${this.where}: cluster_state:${clusterState ?? 'unknown'}`,
      );
    }
    return { conversations: Number(conversations ?? 0), messages: Number(messages ?? 0) };
  }

  /**
   * Reads the state (HMGET), decides the change with patchedState, and writes it with a
   * compare-and-set on the state seq and the life (update-5.lua); a lost race reads again.
   * The indexes and counts follow as a second step.
   */
  updateState(conversationId: string, update: StateUpdate): Promise<StateUpdated> {
    return this.changeState(conversationId, update.now, (header) => {
      if (failsIfMatch({ life: header.life, stateSeq: header.state.stateSeq }, update.ifMatch)) {
        return { code: 'precondition_failed' };
      }
      return patchedState(header.state, update.patch, update.claim ?? false);
    });
  }

  private async changeState(
    conversationId: string,
    now: number,
    decide: (
      header: ConversationHeader,
    ) => { next: StoredState; changed: StateField[] } | StateRefusal | null,
  ): Promise<StateUpdated> {
    const keys = this.keys.conversation(conversationId);
    for (let attempt = 0; attempt < STATE_ATTEMPTS; attempt++) {
      const values = await this.run(() => this.commands.hmget(keys[0], ...REDIS_HEADER_FIELDS));
      const header = redisHeader(conversationId, values);
      if (!header) {
        throw new StoreError('conversation_not_found');
      }
      const decided = decide(header);
      if (decided === null) {
        return { conversation: header };
      }
      if ('code' in decided) {
        return { refused: decided };
      }
      const { next, changed } = decided;
      if (changed.length === 0) {
        return { conversation: header };
      }
      // The event's JSON less its seq, which the script puts in.
      const jsonAfterSeq = stateChangeJson(0, changed, next).slice('{"seq":0'.length);
      const [result, lastActivityAt] = await this.writes.write((commands) =>
        commands.chatUpdate(
          ...keys,
          values[13] ?? '0',
          values[1] ?? '0',
          now,
          this.keys.channel(conversationId),
          this.replayLimit,
          this.keys.inboxChannel,
          conversationId,
          jsonAfterSeq,
          next.status === 'snoozed' ? 0 : 1,
          ...redisStateOf(next),
        ),
      );
      if (result === ScriptCode.Stale) {
        continue;
      }
      refuse(result);
      const at = lastActivityAt ?? now;
      await Promise.all([
        this.inbox.changed(conversationId, {
          lastActivityAt: at,
          assignee: next.assignee,
          from: indexedOf(header.state),
          to: indexedOf(next),
        }),
        this.outbox.active
          ? this.tell([
              tapped(
                conversationId,
                header.life,
                result,
                'conversation.updated',
                `{"seq":${result}${jsonAfterSeq}`,
                now,
              ),
            ])
          : null,
      ]);
      return {
        conversation: {
          ...header,
          version: result,
          lastActivityAt: at,
          state: { ...next, stateSeq: result },
        },
        seq: result,
      };
    }
    throw new StoreError(
      'store_unavailable',
      `Redis at ${this.where}: ${STATE_ATTEMPTS} concurrent state changes in a row`,
    );
  }

  /**
   * Wakes the due snoozes from the due index, each through the compare-and-set path above,
   * under a short lock of its own so that two callers never wake together; stale entries
   * (woken, re-snoozed, evicted) are put right. 0 while another process wakes.
   */
  async wakeSnoozed(now: number): Promise<number> {
    const token = randomUUID();
    const locked = await this.run(() =>
      this.commands.set(this.keys.wakeLock, token, 'PX', WAKE_LOCK_MS, 'NX'),
    );
    if (locked !== 'OK') {
      return 0;
    }
    let woken = 0;
    try {
      for (const bucket of this.keys.inboxBuckets('snooze')) {
        const ids = await this.run(() =>
          this.commands.zrangebyscore(bucket, '-inf', now, 'LIMIT', 0, WAKE_BATCH),
        );
        const results = await Promise.all(ids.map((id) => this.wakeOne(bucket, id, now)));
        woken += results.filter(Boolean).length;
      }
    } finally {
      await this.run(() => this.commands.chatDeleteIf(this.keys.wakeLock, token));
    }
    return woken;
  }

  /** Wakes one due snooze; false when its entry was stale (and is put right). */
  private async wakeOne(bucket: string, id: string, now: number): Promise<boolean> {
    let stale: StoredState | null | undefined;
    let result: StateUpdated;
    try {
      result = await this.changeState(id, now, (header) => {
        const patch = wokenAt(header.state, now);
        if (!patch) {
          stale = header.state;
          return null;
        }
        return patchedState(header.state, patch, false);
      });
    } catch (error) {
      if (error instanceof StoreError && error.code === 'conversation_not_found') {
        await this.run(() => this.commands.zrem(bucket, id));
        return false;
      }
      throw error;
    }
    if (stale !== undefined) {
      await this.run(() =>
        stale?.status === 'snoozed'
          ? this.commands.zadd(bucket, stale.snoozedUntil, id)
          : this.commands.zrem(bucket, id),
      );
      return false;
    }
    return 'seq' in result && result.seq !== undefined;
  }

  /** See RedisInboxIndex.list. */
  list(query: InboxQuery): Promise<InboxPage> {
    return this.inbox.list(query);
  }

  /** See RedisInboxIndex.counts. */
  counts(assignee?: string): Promise<InboxCounts> {
    return this.inbox.counts(assignee);
  }

  /**
   * The inbox feed: every change's script PUBLISHes "<type> <id>" on one channel; the feed's
   * subscriber reads the row and tells it (see InboxFeed).
   */
  watchInbox(listener: InboxListener): Watch {
    if (!this.feed) {
      this.feed = new InboxFeed(this.connection, this.subscriberName);
    }
    return this.feed.watch(listener);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.messageCount.flush();
    this.subscriber?.close();
    this.feed?.close();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  /**
   * The subscriptions, made on the first watch: one connection on one Redis, one per master
   * on a cluster. After a reconnect, or a new master for a watched slot, they subscribe again
   * and, once Redis confirms, tell the watchers of the gap.
   */
  private channelSubscriber(): ChannelSubscriber {
    if (!this.subscriber) {
      const events: SubscriberEvents = {
        message: (channel, payload) => {
          const heard = decodePayload(this.keys.conversationOf(channel), payload);
          if ('typing' in heard) {
            this.watchers.typing(heard.typing);
          } else {
            this.watchers.emit(heard.change);
          }
        },
        gap: (channels) =>
          this.watchers.gap(channels.map((channel) => this.keys.conversationOf(channel))),
      };
      this.subscriber =
        this.redis instanceof Cluster
          ? new ShardSubscribers(this.redis, this.subscriberName, events)
          : new ConnectionSubscriber(this.redis, this.subscriberName, events);
    }
    return this.subscriber;
  }

  /**
   * Tells applied changes to the outbox and waits for it (the webhooks' queue entry is
   * written before the answer). If that fails the change stands and the write still answers:
   * the outbox is one key, on one shard of a cluster, and a write to a conversation on a
   * healthy shard must not fail because that shard is failing over. Nothing is lost: the
   * conversation's queued mark stays behind its last seq, and the reconcile pass queues the
   * change from its replay buffer once the outbox answers again (docs/redis.md, Webhooks).
   */
  private async tell(changes: TappedChange[]): Promise<void> {
    try {
      await this.outbox.changed(changes);
    } catch (error) {
      const now = Date.now();
      if (now - this.outboxWarnedAt > 10_000) {
        this.outboxWarnedAt = now;
        const reason = error instanceof Error ? error.message : String(error);
        this.logger.warn(
          `Redis at ${this.where}: a change was applied but its webhook outbox entry was not written (${reason}); the reconcile pass will queue it`,
        );
      }
    }
  }

  /** When tell() last warned of an outbox it could not write (at most one line in 10 s). */
  private outboxWarnedAt = 0;
  private readonly logger = new Logger('RedisStore');

  /** Runs a command: failures become StoreErrors (see RedisStoreConnection.run). */
  private run<T>(command: () => Promise<T>): Promise<T> {
    return this.connection.run(command);
  }
}
