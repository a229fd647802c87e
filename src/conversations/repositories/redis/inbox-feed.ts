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
    const { redis, keys } = this.store;
    // On a cluster, any node hears a plain PUBLISH: the first master's address serves.
    const base: Redis = redis instanceof Cluster ? redis.nodes('master')[0] : redis;
    const connection = base.duplicate({
      enableOfflineQueue: true,
      autoResubscribe: false,
      connectionName: `${this.name}:inbox`,
      // A cluster's node connections leave reconnecting to the cluster client: this one
      // reconnects by itself, every second at most.
      retryStrategy: (attempt: number) => Math.min(attempt * 100, 1_000),
    });
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
