import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis } from 'ioredis';

/** Where a subscriber tells what it hears, and what it may have missed. */
export interface SubscriberEvents {
  message(channel: string, payload: string): void;
  /** The channels may have missed messages (a reconnect, a new master): read to catch up. */
  gap(channels: string[]): void;
}

/**
 * Sharded pub/sub subscriptions (SSUBSCRIBE), one per watched channel. `subscribe` resolves
 * once Redis has confirmed: a message published after that is heard. When a subscription may
 * have lost messages it is made again, and only once Redis has confirmed that are its
 * channels told as a gap, so that what is read to fill the gap cannot miss anything.
 */
export interface ChannelSubscriber {
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): void;
  close(): void;
}

/**
 * A subscriber connection made like `options` (its own: a connection in subscriber mode
 * takes no other command), which queues its commands while it reconnects, and after a
 * reconnect calls `reconnected` instead of ioredis's autoResubscribe, whose end gives no
 * signal.
 */
function subscriberConnection(
  make: () => Redis,
  events: SubscriberEvents,
  reconnected: (connection: Redis) => void,
): Redis {
  const connection = make();
  let connectedBefore = false;
  connection.on('ready', () => {
    if (connectedBefore) {
      reconnected(connection);
    }
    connectedBefore = true;
  });
  connection.on('error', () => undefined); // the main connection tells of outages
  connection.on('smessage', (channel: string, payload: string) => events.message(channel, payload));
  return connection;
}

/** Subscribes every channel again on a connection; the gap is told once Redis confirms. */
async function subscribeAgain(
  connection: Redis,
  channels: string[],
  events: SubscriberEvents,
): Promise<void> {
  if (channels.length === 0) {
    return;
  }
  try {
    // One slot per SSUBSCRIBE on a cluster; one Redis takes them one by one just as well.
    await Promise.all(channels.map((channel) => connection.ssubscribe(channel)));
  } catch {
    if (connection.status === 'ready') {
      connection.disconnect(true); // made again, which tries again
    }
    return;
  }
  events.gap(channels);
}

/** One Redis: one subscriber connection, named so that an operator can find it in CLIENT LIST. */
export class ConnectionSubscriber implements ChannelSubscriber {
  private readonly connection: Redis;
  private readonly channels = new Set<string>();

  constructor(redis: Redis, name: string, events: SubscriberEvents) {
    this.connection = subscriberConnection(
      () =>
        redis.duplicate({
          enableOfflineQueue: true,
          autoResubscribe: false,
          connectionName: name,
        }),
      events,
      (connection) => void subscribeAgain(connection, [...this.channels], events),
    );
  }

  async subscribe(channel: string): Promise<void> {
    this.channels.add(channel);
    await this.connection.ssubscribe(channel);
  }

  unsubscribe(channel: string): void {
    this.channels.delete(channel);
    void this.connection.sunsubscribe(channel).catch(() => undefined);
  }

  close(): void {
    this.connection.disconnect();
  }
}

/**
 * A Redis Cluster: one subscriber connection per master that owns a watched channel's slot,
 * so that an event travels only within its conversation's shard. When the cluster client
 * refreshes its slot map (it does after a failover or a MOVED, and every few seconds), a
 * channel whose slot has a new master is subscribed there, and told as a gap.
 *
 * Kept here rather than in ioredis's shardedSubscribers, whose resubscription after a
 * topology change is not confirmed: messages published in between were lost unseen.
 */
export class ShardSubscribers implements ChannelSubscriber {
  /** Master node key (host:port) → its subscriber connection. */
  private readonly connections = new Map<string, Redis>();
  /** Channel → the master it is subscribed on. */
  private readonly channels = new Map<string, string>();
  private readonly follow = () => void this.followMasters();

  constructor(
    private readonly cluster: Cluster,
    private readonly name: string,
    private readonly events: SubscriberEvents,
  ) {
    cluster.on('refresh', this.follow);
  }

  async subscribe(channel: string): Promise<void> {
    const master = this.master(channel);
    this.channels.set(channel, master);
    await this.connection(master).ssubscribe(channel);
  }

  unsubscribe(channel: string): void {
    const master = this.channels.get(channel);
    this.channels.delete(channel);
    if (master) {
      void this.connections
        .get(master)
        ?.sunsubscribe(channel)
        .catch(() => undefined);
    }
  }

  close(): void {
    this.cluster.off('refresh', this.follow);
    this.connections.forEach((connection) => connection.disconnect());
    this.connections.clear();
  }

  /** The master that owns a channel's slot now, as the cluster client knows it. */
  private master(channel: string): string {
    const master = this.cluster.slots[calculateSlot(channel)]?.[0];
    if (!master) {
      throw new Error('no master serves this channel now');
    }
    return master;
  }

  private connection(master: string): Redis {
    let connection = this.connections.get(master);
    if (!connection) {
      const at = master.lastIndexOf(':');
      connection = subscriberConnection(
        () =>
          new Redis({
            ...this.cluster.options.redisOptions,
            host: master.slice(0, at),
            port: Number(master.slice(at + 1)),
            enableOfflineQueue: true,
            autoResubscribe: false,
            connectionName: this.name,
            retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
          }),
        this.events,
        (reconnected) =>
          void subscribeAgain(
            reconnected,
            [...this.channels].filter(([, on]) => on === master).map(([channel]) => channel),
            this.events,
          ),
      );
      this.connections.set(master, connection);
    }
    return connection;
  }

  /** Moves every channel whose slot has a new master there; drops connections left idle. */
  private async followMasters(): Promise<void> {
    const moved = new Map<string, string[]>();
    for (const [channel, on] of this.channels) {
      const master = this.cluster.slots[calculateSlot(channel)]?.[0];
      if (master && master !== on) {
        this.channels.set(channel, master);
        moved.set(master, [...(moved.get(master) ?? []), channel]);
        void this.connections
          .get(on)
          ?.sunsubscribe(channel)
          .catch(() => undefined);
      }
    }
    const used = new Set(this.channels.values());
    for (const [master, connection] of this.connections) {
      if (!used.has(master)) {
        connection.disconnect();
        this.connections.delete(master);
      }
    }
    await Promise.all(
      [...moved].map(([master, channels]) =>
        subscribeAgain(this.connection(master), channels, this.events),
      ),
    );
  }
}
