import { HitCount, RateLimitStore } from '../rate-limit.store';

/** Where hit-2.lua is: beside this file (nest-cli.json copies it into dist/). */
export const RATE_LIMIT_SCRIPTS_DIR = __dirname;

/**
 * The process's Redis connection, as the counters use it: the conversation store's
 * (RedisStoreConnection, provided under this token by its module), so that a request's hit
 * and its conversation call leave in the same pipeline. Null unless STORE=redis.
 */
export abstract class RateLimitRedis {
  /** Defines the `<name>-<keys>.lua` scripts in `dir` as commands, as the store's own are. */
  abstract defineScripts(dir: string): void;
  /** The client's commands, the scripts defined included. */
  abstract readonly commands: object;
  abstract readonly keys: { hitCounter(key: string): [string, string] };
  /** Runs a command; a failure to reach Redis becomes a StoreError. */
  abstract run<T>(command: () => Promise<T>): Promise<T>;
}

/** hit-2.lua as a client command (see its file). */
interface HitCommand {
  chatHit(
    counter: string,
    block: string,
    windowMs: number,
    limit: number,
    blockMs: number,
    hits: number,
  ): Promise<[number, number, number, number]>;
}

/**
 * Rate-limit counters in Redis (keys `<prefix>rl:{<key>}` and its block, see RedisKeys), one
 * script per hit (hit-2.lua): every instance counts against the same number.
 */
export class RedisRateLimitStore extends RateLimitStore {
  private readonly commands: HitCommand;

  constructor(private readonly connection: RateLimitRedis) {
    super();
    connection.defineScripts(RATE_LIMIT_SCRIPTS_DIR);
    this.commands = connection.commands as HitCommand;
  }

  async countHit(
    key: string,
    windowMs: number,
    limit: number,
    blockMs: number,
    hits = 1,
  ): Promise<HitCount> {
    const [counter, block] = this.connection.keys.hitCounter(key);
    const [totalHits, windowEndsInMs, blockedForMs, counted] = await this.connection.run(() =>
      this.commands.chatHit(counter, block, windowMs, limit, blockMs, hits),
    );
    return { totalHits, counted, windowEndsInMs, blockedForMs };
  }
}
