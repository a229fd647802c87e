import { Cluster, Redis } from 'ioredis';
import { redisHeader, REDIS_HEADER_FIELDS } from '../../records/conversation.codec';
import { InboxEvent, InboxListener, InboxRow, Watch } from '../../conversation.repository';
import { rowOf } from './inbox-index';
import { RedisStoreConnection } from './redis-connection';

/**
 * The inbox feed on Redis: every change's script does a plain PUBLISH of "<type> <id>" on one
 * channel (RedisKeys.inboxChannel; plain pub/sub reaches every node of a cluster), and one
 * subscriber connection per process hears it, reads the conversation's row and tells every
 * listener. No replay: a reconnect of the subscriber is told as a gap, once the subscription
 * is confirmed again, and the listeners list again.
 */
/** Attempts a cluster node's subscriber makes before the feed moves to another node. */
const FEED_NODE_ATTEMPTS = 3;
/** How long the feed waits before it subscribes on another node. */
const FEED_RESUBSCRIBE_MS = 200;

export class InboxFeed {
  private readonly listeners = new Set<InboxListener>();
  private connection: Redis | null = null;
  private subscribed: Promise<void> | null = null;
  /** The last event told: the next waits for it, so events keep the order heard. */
  private told: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: RedisStoreConnection,
    private readonly name: string,
  ) {}

  watch(listener: InboxListener): Watch {
    this.listeners.add(listener);
    const ready = this.subscribe();
    return {
      ready,
      stop: () => {
        this.listeners.delete(listener);
        if (this.listeners.size === 0) {
          this.close();
        }
      },
    };
  }

  close(): void {
    this.connection?.disconnect();
    this.connection = null;
    this.subscribed = null;
  }

  private subscribe(): Promise<void> {
    if (this.subscribed) {
      return this.subscribed;
    }
    const { keys } = this.store;
    const connection = this.newConnection();
    this.connection = connection;
    let connectedBefore = false;
    connection.on('ready', () => {
      if (connectedBefore) {
        void connection.subscribe(keys.inboxChannel).then(
          () => this.tell((listener) => listener.gap()),
          () => connection.disconnect(true),
        );
      }
      connectedBefore = true;
    });
    connection.on('error', () => undefined);
    // On a cluster the connection gives up on a node that stays down (a failover): the
    // feed moves to another node, which hears every PUBLISH too, and tells a gap.
    connection.on('end', () => {
      if (this.connection === connection && this.listeners.size > 0) {
        this.connection = null;
        this.subscribed = null;
        this.resubscribe();
      }
    });
    connection.on('message', (_channel: string, payload: string) => this.heard(payload));
    const subscribing = this.store
      .run(() => connection.subscribe(keys.inboxChannel))
      .then(() => undefined);
    subscribing.catch(() => {
      if (this.subscribed === subscribing) {
        this.close();
      }
    });
    this.subscribed = subscribing;
    return subscribing;
  }

  /**
   * A subscriber connection: to the one Redis, or on a cluster to a node the cluster client
   * holds ready now (any node hears a plain PUBLISH), which gives up after a few attempts.
   */
  private newConnection(): Redis {
    const { redis } = this.store;
    const options = {
      enableOfflineQueue: true,
      autoResubscribe: false,
      connectionName: `${this.name}:inbox`,
    };
    if (!(redis instanceof Cluster)) {
      // Reconnects by itself, every second at most.
      return redis.duplicate({
        ...options,
        retryStrategy: (attempt: number) => Math.min(attempt * 100, 1_000),
      });
    }
    const nodes = redis.nodes('all');
    const ready = nodes.filter((node) => node.status === 'ready');
    const base = (ready.length > 0 ? ready : nodes)[
      Math.floor(Math.random() * (ready.length || nodes.length))
    ];
    return base.duplicate({
      ...options,
      retryStrategy: (attempt: number) => (attempt > FEED_NODE_ATTEMPTS ? null : 200),
    });
  }

  /** Subscribes again on another node, then tells a gap; tries again while it fails. */
  private resubscribe(): void {
    setTimeout(() => {
      if (this.listeners.size === 0 || this.subscribed) {
        return;
      }
      this.subscribe().then(
        () => this.tell((listener) => listener.gap()),
        () => this.resubscribe(),
      );
    }, FEED_RESUBSCRIBE_MS).unref();
  }

  /**
   * "<type> <id>": the row is read at once, and told in the order heard (the reads of
   * several run together). A conversation gone by its read is not told as updated: its
   * eviction follows.
   */
  private heard(payload: string): void {
    const space = payload.indexOf(' ');
    const type = payload.slice(0, space) as InboxEvent['type'];
    const id = payload.slice(space + 1);
    const event: Promise<InboxEvent | 'gap' | null> =
      type === 'conversation.evicted'
        ? Promise.resolve({ type, conversationId: id })
        : this.rowOf(id).then(
            (row) => row && { type, row },
            () => 'gap' as const,
          );
    this.told = this.told
      .then(() => event)
      .then((told) => {
        if (told === 'gap') {
          this.tell((listener) => listener.gap());
        } else if (told) {
          this.tell((listener) => listener.event(told));
        }
      });
  }

  private async rowOf(id: string): Promise<InboxRow | null> {
    const { commands, keys } = this.store;
    const [conv, , , , seqs] = keys.conversation(id);
    const [values, [last]] = await this.store.run(() =>
      Promise.all([commands.hmget(conv, ...REDIS_HEADER_FIELDS), commands.zrange(seqs, -1, -1)]),
    );
    const header = redisHeader(id, values);
    return header && rowOf(header, last);
  }

  private tell(call: (listener: InboxListener) => void): void {
    for (const listener of [...this.listeners]) {
      try {
        call(listener);
      } catch {
        // One broken listener (a closed stream) must not keep the event from the others.
      }
    }
  }
}
