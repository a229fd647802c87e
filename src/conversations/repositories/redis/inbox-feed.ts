import { Cluster, Redis } from 'ioredis';
import { redisHeader, REDIS_HEADER_FIELDS } from '../../records/conversation.codec';
import { InboxEvent, InboxListener, Watch } from '../../conversation.repository';
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
    connection.on('message', (_channel: string, payload: string) => void this.heard(payload));
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

  /** "<type> <id>": the row read now (a conversation gone meanwhile is not told). */
  private async heard(payload: string): Promise<void> {
    const space = payload.indexOf(' ');
    const type = payload.slice(0, space) as InboxEvent['type'];
    const id = payload.slice(space + 1);
    if (type === 'conversation.evicted') {
      this.tell((listener) => listener.event({ type, conversationId: id }));
      return;
    }
    const { commands, keys } = this.store;
    const [conv, , , , seqs] = keys.conversation(id);
    let read: [(string | null)[], string[]];
    try {
      read = await this.store.run(() =>
        Promise.all([commands.hmget(conv, ...REDIS_HEADER_FIELDS), commands.zrange(seqs, -1, -1)]),
      );
    } catch {
      this.tell((listener) => listener.gap());
      return;
    }
    const header = redisHeader(id, read[0]);
    if (header) {
      const row = rowOf(header, read[1][0]);
      this.tell((listener) => listener.event({ type, row }));
    }
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
