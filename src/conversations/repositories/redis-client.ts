import { Logger } from '@nestjs/common';
import { Cluster, Redis } from 'ioredis';
import { ClusterNodeSeed } from '../../config/app.config';
import { withTimeout } from '../../common/with-timeout';

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
async function warnIfEvicting(node: Redis, where: string, logger: Logger): Promise<void> {
  try {
    const [, policy] = (await node.config('GET', 'maxmemory-policy')) as string[];
    if (policy && policy !== 'noeviction') {
      logger.warn(
        `Redis at ${where} has maxmemory-policy ${policy}: when it fills up it may silently delete conversations. ` +
          'Set maxmemory-policy noeviction: writes past maxmemory are then refused with 507 store_full.',
      );
    }
  } catch {
    // CONFIG is disabled: nothing to say.
  }
}

/**
 * Connects to Redis, or fails with an error that says where and why (unless `mustConnect` is
 * false: a cluster worker, started by a primary that has connected, may be replaced while
 * Redis is down and must not crash for it). The client never queues
 * commands while disconnected and never retries them: a request fails at once with
 * store_unavailable instead of hanging, and the client reconnects by itself (every second at
 * most) so that service resumes when Redis is back.
 */
export async function connectRedis(
  url: string,
  commandTimeoutMs: number,
  { mustConnect = true }: { mustConnect?: boolean } = {},
): Promise<Redis> {
  const where = redactRedisUrl(url);
  const logger = new Logger('Redis');
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
  /** An outage was told and has not ended: told once per outage, not once per retry. */
  let down = false;
  /** Connected at least once: failures before that are the start-up's to tell. */
  let started = false;
  let lastError: Error | null = null;
  redis.on('error', (error: Error) => {
    lastError = error;
    if (started && !down) {
      down = true;
      logger.error(`Redis at ${where} is unreachable: ${error.message}. Retrying every second.`);
    }
  });
  redis.on('ready', () => {
    if (down) {
      logger.log(`Redis at ${where} is back`);
    }
    down = false;
    started = true;
  });
  try {
    await withTimeout(
      redis.connect().then(() => redis.ping()),
      Math.min(commandTimeoutMs, 5_000),
    );
  } catch (error) {
    // The socket's own error (ECONNREFUSED, ENOTFOUND...) says more than "Connection is closed".
    const cause = (lastError as Error | null) ?? error;
    const reason = cause instanceof Error ? cause.message : String(cause);
    if (!mustConnect) {
      // Keeps trying in the background (retryStrategy); commands fail fast until it is back.
      logger.warn(`Starting without Redis at ${where}: ${reason}. Retrying every second.`);
      down = true;
      started = true;
      return redis;
    }
    redis.disconnect();
    throw new Error(`Cannot reach Redis at ${where} (REDIS_URL): ${reason}`);
  }
  if (mustConnect) {
    await warnIfEvicting(redis, where, logger); // once per instance: its workers skip it
  }
  return redis;
}

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
 * follows MOVED and ASK redirections and refreshes its slot map during resharding and
 * failover by itself. Commands are auto-pipelined per node (ioredis groups them by slot
 * owner), since one pipeline may only reach one node. Events use sharded pub/sub on
 * connections of their own (see ShardSubscribers).
 */
export async function connectRedisCluster(
  seeds: ClusterNodeSeed[],
  commandTimeoutMs: number,
  { mustConnect = true }: { mustConnect?: boolean } = {},
): Promise<Cluster> {
  const where = redactClusterSeeds(seeds);
  const logger = new Logger('Redis');
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
  let down = false;
  let started = false;
  let lastError: Error | null = null;
  cluster.on('error', (error: Error) => {
    lastError = error;
    if (started && !down) {
      down = true;
      logger.error(`Redis Cluster at ${where} is unreachable: ${error.message}. Retrying.`);
    }
  });
  cluster.on('ready', () => {
    if (down) {
      logger.log(`Redis Cluster at ${where} is back`);
    }
    down = false;
    started = true;
  });
  try {
    await withTimeout(
      cluster.connect().then(async () => {
        const info = (await cluster.cluster('INFO')) as string;
        if (!/cluster_state:ok/.test(info)) {
          throw new Error(
            `the cluster's state is not ok (${/cluster_state:(\w+)/.exec(info)?.[1] ?? 'unknown'})`,
          );
        }
      }),
      Math.min(commandTimeoutMs, 5_000),
    );
  } catch (error) {
    const cause =
      error instanceof Error && /state is not ok/.test(error.message)
        ? error
        : (lastError ?? error);
    const reason = cause instanceof Error ? cause.message : String(cause);
    if (!mustConnect) {
      logger.warn(`Starting without the Redis Cluster at ${where}: ${reason}. Retrying.`);
      down = true;
      started = true;
      return cluster;
    }
    cluster.disconnect();
    throw new Error(`Cannot use the Redis Cluster at ${where} (REDIS_CLUSTER_NODES): ${reason}`);
  }
  if (mustConnect) {
    for (const master of cluster.nodes('master')) {
      await warnIfEvicting(master, `${master.options.host}:${master.options.port}`, logger);
    }
  }
  return cluster;
}
