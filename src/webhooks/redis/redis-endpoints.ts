import { StoreError } from '../../common/errors/store-error';
import type { RedisStoreConnection } from '../../conversations/repositories/redis/redis-connection';
import type { EndpointRecord } from '../webhook.model';

/**
 * The webhook endpoints in Redis, shared by every process of every instance:
 *
 *   <prefix>{wh}:ep     hash    endpoint id -> its EndpointRecord as JSON
 *   <prefix>{wh}:ep:v   string  a counter bumped by every change, so that each process learns
 *                               of a change by reading one small key (see RedisDeliveryQueues)
 *
 * Both keys share the `{wh}` hash tag, so the scripts below touch one slot on a cluster. The
 * create is refused atomically at the limit; every other change is a compare-and-set on the
 * record's JSON, read again and redone when another process changed it in between, so two
 * instances' concurrent PATCH, disable or rotation never lose one.
 */

/** How many times a change reads again after losing its compare-and-set. */
const UPDATE_ATTEMPTS = 32;

/** KEYS: hash, version. ARGV: id, JSON, limit. 1 made, 0 at the limit. */
const CREATE_LUA = `
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1`;

/** KEYS: hash, version. ARGV: id, the JSON read, the new JSON. 1 set, 0 changed meanwhile, -1 gone. */
const SET_IF_LUA = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  return -1
end
if current ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1`;

/** KEYS: hash, version. ARGV: id. 1 deleted, 0 unknown. */
const DELETE_LUA = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('INCR', KEYS[2])
  return 1
end
return 0`;

interface EndpointScripts {
  webhookEndpointCreate(
    hash: string,
    version: string,
    id: string,
    json: string,
    max: number,
  ): Promise<number>;
  webhookEndpointSetIf(
    hash: string,
    version: string,
    id: string,
    expected: string,
    json: string,
  ): Promise<number>;
  webhookEndpointDelete(hash: string, version: string, id: string): Promise<number>;
}

/** Oldest first, then by id: the order listEndpoints promises. */
function byAge(a: EndpointRecord, b: EndpointRecord): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export class RedisEndpoints {
  readonly hashKey: string;
  readonly versionKey: string;
  private readonly scripts: EndpointScripts;
  /** Every endpoint as last read, and when: the dispatcher's view (see cached). */
  private cache: { at: number; records: Map<string, EndpointRecord> } | null = null;
  private reading: Promise<Map<string, EndpointRecord>> | null = null;
  /** Bumped by every change this process makes: a read begun before it is not kept. */
  private generation = 0;

  /**
   * @param prefix REDIS_KEY_PREFIX, as the conversation store's keys begin
   * @param maxEndpoints WEBHOOK_MAX_ENDPOINTS
   */
  constructor(
    private readonly connection: RedisStoreConnection,
    prefix: string,
    private readonly maxEndpoints: number,
  ) {
    this.hashKey = `${prefix}{wh}:ep`;
    this.versionKey = `${prefix}{wh}:ep:v`;
    const redis = connection.redis;
    redis.defineCommand('webhookEndpointCreate', { numberOfKeys: 2, lua: CREATE_LUA });
    redis.defineCommand('webhookEndpointSetIf', { numberOfKeys: 2, lua: SET_IF_LUA });
    redis.defineCommand('webhookEndpointDelete', { numberOfKeys: 2, lua: DELETE_LUA });
    this.scripts = redis as unknown as EndpointScripts;
  }

  /** Stores a new endpoint, or rejects with webhook_limit_reached at WEBHOOK_MAX_ENDPOINTS. */
  async create(record: EndpointRecord): Promise<void> {
    const made = await this.connection.run(() =>
      this.scripts.webhookEndpointCreate(
        this.hashKey,
        this.versionKey,
        record.id,
        JSON.stringify(record),
        this.maxEndpoints,
      ),
    );
    if (made !== 1) {
      throw new StoreError('webhook_limit_reached');
    }
    this.forget();
  }

  /** The endpoint as stored now; null when there is none. */
  async get(id: string): Promise<EndpointRecord | null> {
    const json = await this.connection.run(() => this.connection.redis.hget(this.hashKey, id));
    return json === null ? null : (JSON.parse(json) as EndpointRecord);
  }

  /** Every endpoint as stored now, oldest first (the fan-out reads them so, per batch). */
  async all(): Promise<EndpointRecord[]> {
    return [...(await this.readNow()).values()].sort(byAge);
  }

  /**
   * The endpoint as this process last read it, at most `maxAgeMs` ago: the dispatcher's view,
   * which sends every attempt and must not cost a read each. A change made by any process
   * reaches it within that bound.
   */
  async cached(id: string, maxAgeMs = 1_000): Promise<EndpointRecord | null> {
    const cache = this.cache;
    if (cache && Date.now() - cache.at < maxAgeMs) {
      return cache.records.get(id) ?? null;
    }
    return (await this.read()).get(id) ?? null;
  }

  /** Every endpoint as last read (see cached), oldest first. */
  async allCached(maxAgeMs = 1_000): Promise<EndpointRecord[]> {
    const cache = this.cache;
    if (cache && Date.now() - cache.at < maxAgeMs) {
      return [...cache.records.values()].sort(byAge);
    }
    return this.all();
  }

  /** The change counter: it differs after any change by any process. */
  async version(): Promise<string> {
    const version = await this.connection.run(() => this.connection.redis.get(this.versionKey));
    return version ?? '0';
  }

  /**
   * Changes one endpoint: `change` gets the record as stored and answers the new one, or null
   * to leave it (it may throw a StoreError to refuse, e.g. rotation_limit_reached). Redone on
   * the record read again when another process changed it meanwhile. Rejects with
   * webhook_not_found when there is no such endpoint.
   */
  async update(
    id: string,
    change: (record: EndpointRecord) => EndpointRecord | null,
  ): Promise<{ record: EndpointRecord; changed: boolean }> {
    for (let attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
      const json = await this.connection.run(() => this.connection.redis.hget(this.hashKey, id));
      if (json === null) {
        throw new StoreError('webhook_not_found');
      }
      const record = JSON.parse(json) as EndpointRecord;
      const next = change(record);
      if (next === null) {
        return { record, changed: false };
      }
      const set = await this.connection.run(() =>
        this.scripts.webhookEndpointSetIf(
          this.hashKey,
          this.versionKey,
          id,
          json,
          JSON.stringify(next),
        ),
      );
      if (set === -1) {
        throw new StoreError('webhook_not_found');
      }
      if (set === 1) {
        this.forget();
        return { record: next, changed: true };
      }
    }
    throw new StoreError('store_unavailable', `endpoint ${id} kept changing: gave up updating it`);
  }

  /** Whether it was there. */
  async delete(id: string): Promise<boolean> {
    const deleted = await this.connection.run(() =>
      this.scripts.webhookEndpointDelete(this.hashKey, this.versionKey, id),
    );
    this.forget();
    return deleted === 1;
  }

  /** Drops this process's view: the next cached read reads again. */
  forget(): void {
    this.cache = null;
    this.generation++;
  }

  /** For cached reads: one read at a time per process, shared by whoever waits for it. */
  private read(): Promise<Map<string, EndpointRecord>> {
    if (!this.reading) {
      this.reading = this.readNow().finally(() => {
        this.reading = null;
      });
    }
    return this.reading;
  }

  /** Reads every endpoint and keeps them as the cache, unless a change was made meanwhile. */
  private async readNow(): Promise<Map<string, EndpointRecord>> {
    const at = Date.now();
    const generation = this.generation;
    const fields = await this.connection.run(() => this.connection.redis.hgetall(this.hashKey));
    const records = new Map(
      Object.entries(fields).map(([id, json]) => [id, JSON.parse(json) as EndpointRecord]),
    );
    if (generation === this.generation) {
      this.cache = { at, records };
    }
    return records;
  }
}
