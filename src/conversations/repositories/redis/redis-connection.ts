import { Cluster, Redis } from 'ioredis';
import { withTimeout } from '../../../common/time/with-timeout';
import { StoreError } from '../../../common/errors/store-error';
import { batchedCommands } from './redis-batch';
import { RedisKeys } from './redis-keys';
import { defineRedisScripts, RedisScripts } from './redis-scripts';

/** One Redis (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES). */
export type RedisClient = Redis | Cluster;

export type ScriptedRedis = Redis & RedisScripts;

/**
 * What the Redis stores of one process share (the conversations' and the rate limits'): one
 * client with the scripts defined on it, its commands, the key layout, and how a failure
 * becomes a StoreError. One connection, so a request's rate-limit hit and its conversation
 * call leave in the same pipeline.
 */
export class RedisStoreConnection {
  /**
   * The client's commands: on one Redis batched per event-loop turn (see batchedCommands); on
   * a cluster auto-pipelined per node by the client, since a pipeline reaches one node.
   */
  readonly commands: ScriptedRedis;
  readonly keys: RedisKeys;

  /**
   * @param redis a client that fails commands fast while disconnected (see connectRedis and
   *   connectRedisCluster)
   * @param where the Redis URL or cluster seeds without credentials, for error messages
   * @param timeoutMs the longest a cluster's call may take (see run)
   */
  constructor(
    readonly redis: RedisClient,
    prefix: string,
    readonly where: string,
    private readonly timeoutMs: number,
  ) {
    defineRedisScripts(redis);
    this.commands =
      redis instanceof Cluster
        ? (redis as unknown as ScriptedRedis)
        : batchedCommands<ScriptedRedis>(redis);
    this.keys = new RedisKeys(prefix);
  }

  /**
   * Defines the scripts in `dir` on this client too, as commands beside the store's own: those
   * of another port's store that shares this connection (the rate-limit counters').
   */
  defineScripts(dir: string): void {
    defineRedisScripts(this.redis, dir);
  }

  /**
   * Runs a command; any failure to reach Redis becomes store_unavailable, a refusal for want
   * of memory store_full. One Redis's client
   * bounds each command itself; a cluster's call is bounded here, since it may follow
   * redirections and wait out a failover.
   */
  async run<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await (this.redis instanceof Cluster
        ? withTimeout(command(), this.timeoutMs)
        : command());
    } catch (error) {
      if (error instanceof StoreError) {
        throw error;
      }
      const reason = error instanceof Error ? error.message : String(error);
      // maxmemory reached under noeviction: nothing was written.
      const code = reason.startsWith('OOM ') ? 'store_full' : 'store_unavailable';
      throw new StoreError(code, `Redis at ${this.where}: ${reason}`);
    }
  }
}
