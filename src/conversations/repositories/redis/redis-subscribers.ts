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
 * signal. Its errors go to `failed` (the main connection tells of outages).
 */
function subscriberConnection(
  make: () => Redis,
  events: SubscriberEvents,
  reconnected: (connection: Redis) => void,
  failed: (error: Error) => void = () => undefined,
): Redis {
  const connection = make();
  let connectedBefore = false;
  connection.on('ready', () => {
    if (connectedBefore) {
      reconnected(connection);
    }
    connectedBefore = true;
  });
  connection.on('error', failed);
  connection.on('smessage', (channel: string, payload: string) => events.message(channel, payload));
  return connection;
}

/**
 * SSUBSCRIBEs the channels and resolves once Redis has confirmed each. Rejected when the
 * node answers MOVED: ioredis then emits `moved` and never settles the command.
 */
function confirmSubscribed(connection: Redis, channels: string[]): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const moved = () => reject(new Error('MOVED: this node does not serve the channel'));
    connection.once('moved', moved);
    // One slot per SSUBSCRIBE on a cluster; one Redis takes them one by one just as well.
    Promise.all(channels.map((channel) => connection.ssubscribe(channel)))
      .then(() => resolve(), reject)
      .finally(() => connection.off('moved', moved));
  });
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
    await confirmSubscribed(connection, channels);
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

/** How soon a subscription that could not be made is tried again, with a fresh slot map. */
const RETRY_MS = 250;

/**
 * A Redis Cluster: one subscriber connection per master that owns a watched channel's slot,
 * so that an event travels only within its conversation's shard. Whenever the cluster client
 * refreshes its slot map (every slotsRefreshInterval, after a MOVED, and when asked here), a
 * channel whose slot has a new master is subscribed there, and told as a gap, so that its
 * streams catch up from the store. The map is refreshed at once when a node pushes an
 * unasked `sunsubscribe` (the slot left it: the channel has no subscription until it is
 * made at the new owner), when a SSUBSCRIBE is answered MOVED, and when a subscriber
 * connection loses its master (dead, or failed over): its channels move to whichever master
 * the map names, rather than wait for an address that may never serve them again.
 *
 * Kept here rather than in ioredis's shardedSubscribers, whose resubscription after a
 * topology change is not confirmed: messages published in between were lost unseen.
 */
export class ShardSubscribers implements ChannelSubscriber {
  /** Master node key (host:port) → its subscriber connection. */
  private readonly connections = new Map<string, Redis>();
  /**
   * Channel → the master it is subscribed (or being subscribed) on; null when it has no
   * subscription, until the next slot map says where to make one.
   */
  private readonly channels = new Map<string, string | null>();
  private readonly follow = () => void this.followMasters();
  private refreshTimer: NodeJS.Timeout | null = null;
  private lastRefreshAt = 0;

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
    await confirmSubscribed(this.connection(master), [channel]);
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
    if (this.refreshTimer) {
      clearTimeout(this.refreshTimer);
      this.refreshTimer = null;
    }
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

  /**
   * Asks the cluster client for a fresh slot map (its `refresh` then moves the channels);
   * one request at a time, and none within RETRY_MS of the last: while nodes still disagree
   * about a slot, a map that names the old owner leads to a MOVED, which asks again, and
   * without the pause that loop would run at round-trip speed.
   */
  private refresh(delayMs = 0): void {
    const wait = Math.max(delayMs, this.lastRefreshAt + RETRY_MS - Date.now());
    this.refreshTimer ??= setTimeout(() => {
      this.refreshTimer = null;
      this.lastRefreshAt = Date.now();
      this.cluster.refreshSlotsCache();
    }, wait);
    this.refreshTimer.unref();
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
        () => void this.resubscribe(master, this.channelsOn(master)),
        () => this.refresh(),
      );
      // Lost its master: the slot map may name another by now.
      connection.on('reconnecting', () => this.refresh());
      // A slot left this master: ioredis 6 emits `moved` for the `sunsubscribe` the node pushed
      // unasked (and for a SSUBSCRIBE answered MOVED), without naming the channel. Every
      // channel here is subscribed again wherever the fresh map puts it, and told as a gap;
      // those that did not move are only caught up (the stream skips what it has sent).
      connection.on('moved', () => {
        for (const channel of this.channelsOn(master)) {
          this.channels.set(channel, null);
        }
        this.refresh();
      });
      this.connections.set(master, connection);
    }
    return connection;
  }

  private channelsOn(master: string): string[] {
    return [...this.channels].filter(([, on]) => on === master).map(([channel]) => channel);
  }

  /**
   * Subscribes the channels on their master and, once it confirms, tells the gap. Those it
   * does not confirm (a MOVED from a map that was behind, a master out of reach) wait for a
   * fresh map.
   */
  private async resubscribe(master: string, channels: string[]): Promise<void> {
    if (channels.length === 0) {
      return;
    }
    try {
      await confirmSubscribed(this.connection(master), channels);
    } catch {
      for (const channel of channels) {
        if (this.channels.get(channel) === master) {
          this.channels.set(channel, null);
        }
      }
      this.refresh(RETRY_MS);
      return;
    }
    // Those moved on meanwhile are told by their new master's confirmation.
    this.events.gap(channels.filter((channel) => this.channels.get(channel) === master));
  }

  /** Moves every channel whose slot has a new master there; drops connections left idle. */
  private async followMasters(): Promise<void> {
    const moved = new Map<string, string[]>();
    for (const [channel, on] of this.channels) {
      const master = this.cluster.slots[calculateSlot(channel)]?.[0];
      if (master && master !== on) {
        this.channels.set(channel, master);
        moved.set(master, [...(moved.get(master) ?? []), channel]);
        if (on) {
          void this.connections
            .get(on)
            ?.sunsubscribe(channel)
            .catch(() => undefined);
        }
      }
    }
    const used = new Set(this.channels.values());
    for (const [master, connection] of this.connections) {
      if (!used.has(master)) {
        connection.disconnect();
        this.connections.delete(master);
      }
    }
    await Promise.all([...moved].map(([master, channels]) => this.resubscribe(master, channels)));
  }
}
