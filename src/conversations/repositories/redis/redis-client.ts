import { Logger } from '@nestjs/common';
import { Cluster, Redis } from 'ioredis';
import { ClusterNodeSeed } from '../../../config/app.config';
import { withTimeout } from '../../../common/time/with-timeout';

/** The URL without user or password, fit for logs and health reports. */
export function redactRedisUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

/**
 * Warns when a Redis may evict keys to make room (any maxmemory-policy but noeviction): it
 * would silently delete conversations. With noeviction a write past maxmemory fails, and the
 * server answers 507 store_full. A Redis that does not let CONFIG be read (some managed
 * services) is left unchecked.
 */
async function warnIfEvicting(node: Redis, where: string): Promise<void> {
  try {
    const [, policy] = (await node.config('GET', 'maxmemory-policy')) as string[];
    if (policy && policy !== 'noeviction') {
      new Logger('Redis').warn(
        `Redis at ${where} has maxmemory-policy ${policy}: when it fills up it may silently delete conversations. ` +
          'Set maxmemory-policy noeviction: writes past maxmemory are then refused with 507 store_full.',
      );
    }
  } catch {
    // CONFIG is disabled: nothing to say.
  }
}

/** A usability check that failed: its message says why. */
class CheckFailed extends Error {}

/**
 * Brings a client up within the time allowed, or says why. It tells an outage once when it
 * begins and once when it ends, never once per retry, and never queues commands meanwhile
 * (see the callers). With `mustConnect` false (a cluster worker, started by a primary that
 * has connected, may be replaced while Redis is down and must not crash for it), a client
 * that cannot connect is returned anyway and keeps trying in the background.
 *
 * @param check what proves the client usable once connected (a PING; the cluster's state)
 * @param setting the variable to name when it cannot be used
 */
async function bringUp<Client extends Redis | Cluster>(
  client: Client,
  check: () => Promise<unknown>,
  what: string,
  setting: string,
  timeoutMs: number,
  mustConnect: boolean,
): Promise<Client> {
  const logger = new Logger('Redis');
  /** An outage was told and has not ended. */
  let down = false;
  /** Connected at least once: failures before that are the start-up's to tell. */
  let started = false;
  let lastError: Error | null = null;
  client.on('error', (error: Error) => {
    lastError = error;
    if (started && !down) {
      down = true;
      logger.error(`${what} is unreachable: ${error.message}. Retrying every second.`);
    }
  });
  client.on('ready', () => {
    if (down) {
      logger.log(`${what} is back`);
    }
    down = false;
    started = true;
  });
  try {
    await withTimeout(client.connect().then(check), Math.min(timeoutMs, 5_000));
  } catch (error) {
    // The socket's own error (ECONNREFUSED, ENOTFOUND...) says more than "Connection is
    // closed"; a check that failed says why itself.
    const cause = error instanceof CheckFailed ? error : ((lastError as Error | null) ?? error);
    const reason = cause instanceof Error ? cause.message : String(cause);
    if (!mustConnect) {
      logger.warn(`Starting without ${what}: ${reason}. Retrying every second.`);
      down = true;
      started = true;
      return client;
    }
    client.disconnect();
    throw new Error(`Cannot reach ${what} (${setting}): ${reason}`);
  }
  return client;
}

/**
 * Connects to Redis, or fails with an error that says where and why (see bringUp). The client
 * never queues commands while disconnected and never retries them: a request fails at once
 * with store_unavailable instead of hanging, and the client reconnects by itself (every
 * second at most) so that service resumes when Redis is back.
 */
export async function connectRedis(
  url: string,
  commandTimeoutMs: number,
  { mustConnect = true }: { mustConnect?: boolean } = {},
): Promise<Redis> {
  const where = redactRedisUrl(url);
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.min(commandTimeoutMs, 5_000),
    // The repository batches per event-loop turn itself (redis-batch.ts).
    enableAutoPipelining: false,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
  });
  await bringUp(
    redis,
    () => redis.ping(),
    `Redis at ${where}`,
    'REDIS_URL',
    commandTimeoutMs,
    mustConnect,
  );
  if (mustConnect) {
    await warnIfEvicting(redis, where); // once per instance: its workers skip it
  }
  return redis;
}

/**
 * How often the cluster client asks for the slot map without being prompted (ioredis refreshes
 * it by itself only on a MOVED, which a process that sends a slot nothing never gets).
 */
export const SLOTS_REFRESH_INTERVAL_MS = 2_000;

/** The seeds as logs and errors name them: hosts and ports, never credentials. */
export function redactClusterSeeds(seeds: ClusterNodeSeed[]): string {
  return seeds
    .map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`)
    .join(',');
}

/**
 * Connects to a Redis Cluster from its seed nodes (REDIS_CLUSTER_NODES), or fails with an
 * error that names the variable and says why: unreachable, or a cluster whose state is not
 * ok. As connectRedis, commands are never queued while the cluster is down; the client
 * follows MOVED and ASK redirections, and refreshes its slot map after a MOVED and every
 * SLOTS_REFRESH_INTERVAL_MS. Commands are auto-pipelined per node (ioredis groups them by slot
 * owner), since one pipeline may only reach one node. Events use sharded pub/sub on
 * connections of their own (see ShardSubscribers).
 */
export async function connectRedisCluster(
  seeds: ClusterNodeSeed[],
  commandTimeoutMs: number,
  { mustConnect = true }: { mustConnect?: boolean } = {},
): Promise<Cluster> {
  const where = redactClusterSeeds(seeds);
  const [{ username, password, tls }] = seeds;
  const cluster = new Cluster(
    seeds.map(({ host, port }) => ({ host, port })),
    {
      lazyConnect: true,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      scaleReads: 'master',
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      clusterRetryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
      slotsRefreshTimeout: Math.min(commandTimeoutMs, 2_000),
      // A process that only streams a conversation sends nothing that a MOVED would answer:
      // only a refresh shows it that the slot moved (see ShardSubscribers).
      slotsRefreshInterval: SLOTS_REFRESH_INTERVAL_MS,
      redisOptions: {
        username,
        password,
        ...(tls ? { tls: {} } : {}),
        maxRetriesPerRequest: 0,
        commandTimeout: commandTimeoutMs,
        connectTimeout: Math.min(commandTimeoutMs, 5_000),
      },
    },
  );
  await bringUp(
    cluster,
    async () => {
      const info = (await cluster.cluster('INFO')) as string;
      if (!/cluster_state:ok/.test(info)) {
        const state = /cluster_state:(\w+)/.exec(info)?.[1] ?? 'unknown';
        throw new CheckFailed(`the cluster's state is not ok (${state})`);
      }
    },
    `the Redis Cluster at ${where}`,
    'REDIS_CLUSTER_NODES',
    commandTimeoutMs,
    mustConnect,
  );
  if (mustConnect) {
    for (const master of cluster.nodes('master')) {
      await warnIfEvicting(master, `${master.options.host}:${master.options.port}`);
    }
  }
  return cluster;
}
