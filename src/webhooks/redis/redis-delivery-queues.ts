import { Logger } from '@nestjs/common';
import { DelayedError, Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { StoreError } from '../../common/errors/store-error';
import type { RedisStoreConnection } from '../../conversations/repositories/redis/redis-connection';
import type { WebhookSettings } from '../../config/app.settings';
import {
  AttemptOutcome,
  attemptsAllowed,
  DeliveryObserver,
  disablesForFailing,
  heaviestBacklog,
  nextStep,
  SILENT_OBSERVER,
} from '../delivery-policy';
import type { WebhookSender } from '../webhook-sender';
import {
  DeliveryAttempt,
  disablesFor,
  EndpointRecord,
  sends,
  signingSecrets,
  WebhookEvent,
  WebhookEventType,
  wants,
} from '../webhook.model';
import { RedisEndpoints } from './redis-endpoints';
import type { DeliveryEnqueuer } from './redis-fan-out';

/**
 * The deliveries in Redis: one BullMQ queue per endpoint, `deliveries` under the prefix
 * `<prefix>{wh:<endpoint id>}`, so that on a cluster each queue lives in one slot (BullMQ's
 * scripts touch many of its keys at once) and each test's prefix isolates its queues. Beside
 * each queue, in the same slot:
 *
 *   <prefix>{wh:<id>}:sizes  hash    pending job id -> its body's bytes (the backlog's count)
 *   <prefix>{wh:<id>}:bytes  string  their sum (WEBHOOK_MAX_BYTES: summed over the enabled ones)
 *   <prefix>{wh:<id>}:log    zset    score when queued, member job id: the log's order
 *
 * Every process that delivers (once started) runs a Worker on the queue of every endpoint
 * that sends (enabled, or draining its backlog: sends()): jobs are shared out by BullMQ, and
 * the queue's global concurrency caps the attempts in flight across processes and instances
 * (WEBHOOK_MAX_IN_FLIGHT). A job that a
 * dead process held goes back to waiting once its lock expires (lockDuration twice the
 * attempt's timeout), and another process sends it.
 * The job's id is the event's, so queueing an event twice is harmless; its data is the event;
 * each attempt that did not succeed is one line of the job's log (an AttemptLine), and the
 * one that succeeded is the job's return value (no log line: that would be one more call to
 * Redis per delivery, on the path every delivery takes).
 *
 * A finished job is uncounted from `sizes` and `bytes` after BullMQ has moved it (release), so
 * a process that stops in between leaves it counted; a sweep in each delivering process
 * (SWEEP_LUA, a step every SWEEP_EVERY_MS per endpoint that sends) uncounts finished jobs, and
 * counts whose job a stopped process never added (ORPHAN_LUA, once seen so for ORPHAN_AFTER_MS).
 */

const QUEUE_NAME = 'deliveries';
/** How often each process looks for endpoints made, disabled or deleted elsewhere. */
const SYNC_INTERVAL_MS = 500;
/** How soon a job put back by a stopping or disabled worker is due again. */
const PUT_BACK_MS = 1_000;
/** Entries of the BullMQ events stream kept per queue: nothing here reads it. */
const EVENTS_KEPT = 50;
/** Log entries looked at per enqueue when the log index has outgrown what can still exist. */
const LOG_TRIM_BATCH = 200;
/** Counted deliveries each endpoint's sweep looks at per step, and how often it steps. */
const SWEEP_BATCH = 500;
const SWEEP_EVERY_MS = 5_000;
/**
 * How long a count with no job must stay so before the sweep takes it: BullMQ adds the job
 * milliseconds after the count, unless the process stopped in between.
 */
const ORPHAN_AFTER_MS = 60_000;

/** A job's data: the event as queued. */
export type DeliveryJobData = WebhookEvent;

/** One line of a job's log: an attempt, and when the next is due if one is. */
export interface AttemptLine extends DeliveryAttempt {
  retryAt: number | null;
}

/** An attempt that is to be retried: the delay BullMQ's backoff takes (see backoffStrategy). */
class RetryLater extends Error {
  constructor(
    readonly outcome: AttemptOutcome,
    readonly delayMs: number,
  ) {
    super(outcome.error ?? `status ${outcome.statusCode}`);
  }
}

/**
 * KEYS: sizes, bytes, log. ARGV: the job key prefix, 1 to skip events whose job exists (a
 * duplicate), the log's size past which it is trimmed, then (id, bytes, queued at) per event.
 * Counts each event once while it is pending, and indexes it in the log. The trim keeps an
 * entry still counted in `sizes`: its job is being added (see LIST_LUA).
 */
const RESERVE_LUA = `
local trimAbove = tonumber(ARGV[3])
for i = 4, #ARGV, 3 do
  local id = ARGV[i]
  if ARGV[2] == '0' or redis.call('EXISTS', ARGV[1] .. id) == 0 then
    if redis.call('HSETNX', KEYS[1], id, ARGV[i + 1]) == 1 then
      redis.call('INCRBY', KEYS[2], ARGV[i + 1])
    end
    redis.call('ZADD', KEYS[3], ARGV[i + 2], id)
  end
end
local excess = redis.call('ZCARD', KEYS[3]) - trimAbove
if excess > 0 then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, ${LOG_TRIM_BATCH} - 1)
  for _, id in ipairs(oldest) do
    if redis.call('EXISTS', ARGV[1] .. id) == 0 and redis.call('HEXISTS', KEYS[1], id) == 0 then
      redis.call('ZREM', KEYS[3], id)
    end
  end
end
return 1`;

/** KEYS: sizes, bytes. ARGV: job ids. Jobs no longer pending: their bytes no longer count. */
const RELEASE_LUA = `
for i = 1, #ARGV do
  local bytes = redis.call('HGET', KEYS[1], ARGV[i])
  if bytes then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('DECRBY', KEYS[2], bytes)
  end
end
return 1`;

/**
 * KEYS: log, sizes. ARGV: the queue's key prefix (`…:deliveries:`), the cursor's score (`+inf`
 * for the first page) and job id (empty for the first page), the status wanted (empty: any),
 * how many. Newest first: flat id, score, status. Entries whose job is gone (removed by age or
 * count) are dropped from the index on the way. An entry with no job that is still counted in
 * `sizes` is not gone but being queued: add() reserves (indexes) an event before BullMQ adds
 * its job, and a read between the two must not drop it from the log for good.
 */
const LIST_LUA = `
local base = ARGV[1]
local cursorScore = ARGV[2]
local cursorId = ARGV[3]
local wanted = ARGV[4]
local limit = tonumber(ARGV[5])
local out = {}
local gone = {}
local offset = 0
while #out < limit * 3 do
  local batch = redis.call('ZREVRANGEBYSCORE', KEYS[1], cursorScore, '-inf', 'WITHSCORES', 'LIMIT', offset, 200)
  if #batch == 0 then
    break
  end
  offset = offset + #batch / 2
  for i = 1, #batch, 2 do
    local id = batch[i]
    local score = batch[i + 1]
    local skip = cursorId ~= '' and tonumber(score) == tonumber(cursorScore) and id >= cursorId
    if not skip then
      local status = nil
      if redis.call('ZSCORE', base .. 'completed', id) then
        status = 'succeeded'
      elseif redis.call('ZSCORE', base .. 'failed', id) then
        status = 'failed'
      elseif redis.call('EXISTS', base .. id) == 1 or redis.call('HEXISTS', KEYS[2], id) == 1 then
        status = 'pending'
      else
        gone[#gone + 1] = id
      end
      if status and (wanted == '' or wanted == status) and #out < limit * 3 then
        out[#out + 1] = id
        out[#out + 1] = score
        out[#out + 1] = status
      end
    end
  end
end
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[1], id)
end
return out`;

/**
 * KEYS: sizes, bytes, BullMQ's completed and failed sets. ARGV: the HSCAN cursor, how many, the
 * job key prefix. Uncounts counted deliveries whose job has finished: their release was lost
 * (the process stopped between BullMQ's move and the release, or the release's call failed).
 * A count with no job at all is only reported: add() counts an event before BullMQ adds its
 * job, so it may be on its way (ORPHAN_LUA takes it once it has stayed so).
 * Answers the next cursor, how many it uncounted, and the ids counted with no job.
 */
const SWEEP_LUA = `
local scan = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local entries = scan[2]
local uncounted = 0
local orphans = {}
for i = 1, #entries, 2 do
  local id = entries[i]
  if redis.call('ZSCORE', KEYS[3], id) or redis.call('ZSCORE', KEYS[4], id) then
    redis.call('HDEL', KEYS[1], id)
    redis.call('DECRBY', KEYS[2], entries[i + 1])
    uncounted = uncounted + 1
  elseif redis.call('EXISTS', ARGV[3] .. id) == 0 then
    orphans[#orphans + 1] = id
  end
end
return {scan[1], uncounted, orphans}`;

/**
 * KEYS: sizes, bytes. ARGV: the job key prefix, then ids the sweep found counted with no job
 * ORPHAN_AFTER_MS ago. Uncounts each that still has no job: its process stopped between the
 * count and BullMQ's add. Answers how many.
 */
const ORPHAN_LUA = `
local uncounted = 0
for i = 2, #ARGV do
  local bytes = redis.call('HGET', KEYS[1], ARGV[i])
  if bytes and redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('DECRBY', KEYS[2], bytes)
    uncounted = uncounted + 1
  end
end
return uncounted`;

interface QueueScripts {
  webhookReserve(
    sizes: string,
    bytes: string,
    log: string,
    ...args: (string | number)[]
  ): Promise<number>;
  webhookRelease(sizes: string, bytes: string, ...ids: string[]): Promise<number>;
  webhookList(log: string, sizes: string, ...args: (string | number)[]): Promise<string[]>;
  webhookSweep(
    sizes: string,
    bytes: string,
    completed: string,
    failed: string,
    ...args: (string | number)[]
  ): Promise<[string, number, string[]]>;
  webhookOrphans(sizes: string, bytes: string, ...args: string[]): Promise<number>;
}

/** The keys of one endpoint's queue and what is kept beside it. */
export interface QueueKeys {
  /** BullMQ's prefix: its keys are `<this>:deliveries:…`. */
  prefix: string;
  /** BullMQ's job keys begin so (`<this><job id>`). */
  jobs: string;
  sizes: string;
  bytes: string;
  log: string;
}

/** One endpoint's worker in this process. */
interface Running {
  worker: Worker<DeliveryJobData>;
}

export class RedisDeliveryQueues implements DeliveryEnqueuer {
  readonly endpoints: RedisEndpoints;
  private readonly logger = new Logger(RedisDeliveryQueues.name);
  /** BullMQ's own connections: queues share one; each worker duplicates the other (blocking). */
  private readonly queueClient: Redis | Cluster;
  private readonly workerClient: Redis | Cluster;
  private readonly scripts: QueueScripts;
  private readonly queues = new Map<string, Queue<DeliveryJobData>>();
  /** Whether each queue's global concurrency was set by this process. */
  private readonly capped = new Map<string, Promise<unknown>>();
  private readonly running = new Map<string, Running>();
  private readonly attempts: number;
  private readonly lockDurationMs: number;
  private syncTimer: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  private seenVersion: string | null = null;
  /** The endpoints as the last sync read them (what wants() answers from). */
  private known: EndpointRecord[] = [];
  /**
   * Until start(): a process that only serves the routes (a cluster worker on Redis) makes no
   * workers, even when it makes an endpoint (createEndpoint syncs); the delivering process
   * follows within SYNC_INTERVAL_MS.
   */
  private stopped = true;
  /** A sync failure is logged once until one succeeds. */
  private syncFailing = false;
  /** Finished jobs not yet uncounted, per endpoint (see release). */
  private toRelease = new Map<string, string[]>();
  private releasing: Promise<void> | null = null;
  /** Each delivering endpoint's sweep cursor, and when the sweep last stepped. */
  private readonly sweepCursors = new Map<string, string>();
  private sweptAt = 0;
  /**
   * Per endpoint, the ids its sweep found counted with no job and when first (`since`), and
   * those found again in the sweep's current pass over the counts (`seen`). Only a hint:
   * ORPHAN_LUA checks again before it uncounts, and every process keeps its own.
   */
  private readonly orphans = new Map<string, { since: Map<string, number>; seen: Set<string> }>();

  /**
   * @param connection the conversation store's connection: endpoints live beside it, and the
   *   queues' connections copy its client's options
   * @param prefix REDIS_KEY_PREFIX
   */
  constructor(
    connection: RedisStoreConnection,
    private readonly prefix: string,
    private readonly settings: WebhookSettings,
    private readonly sender: WebhookSender,
    private readonly observer: DeliveryObserver = SILENT_OBSERVER,
    private readonly clock: () => number = Date.now,
  ) {
    this.endpoints = new RedisEndpoints(connection, prefix, settings.maxEndpoints);
    const redis = connection.redis;
    redis.defineCommand('webhookReserve', { numberOfKeys: 3, lua: RESERVE_LUA });
    redis.defineCommand('webhookRelease', { numberOfKeys: 2, lua: RELEASE_LUA });
    redis.defineCommand('webhookList', { numberOfKeys: 2, lua: LIST_LUA });
    redis.defineCommand('webhookSweep', { numberOfKeys: 4, lua: SWEEP_LUA });
    redis.defineCommand('webhookOrphans', { numberOfKeys: 2, lua: ORPHAN_LUA });
    this.scripts = redis as unknown as QueueScripts;
    this.connection = connection;
    // Queues fail fast as the store does (a fan-out that cannot queue is retried by the
    // reconcile pass); workers wait out an outage, and block for jobs, so they have no
    // command timeout and retry every command (BullMQ requires maxRetriesPerRequest null).
    const blocking = { maxRetriesPerRequest: null, commandTimeout: undefined };
    if (redis instanceof Cluster) {
      this.queueClient = redis.duplicate(undefined, {});
      this.workerClient = redis.duplicate(undefined, {
        enableOfflineQueue: true,
        redisOptions: { ...redis.options.redisOptions, ...blocking },
      });
    } else {
      // BullMQ sends one command per call; the worker's jobs in flight and the fan-out's
      // batches issue theirs in the same turn, so they go out in one write.
      this.queueClient = redis.duplicate({
        connectionName: `${prefix}webhooks`,
        enableAutoPipelining: true,
      });
      this.workerClient = redis.duplicate({
        ...blocking,
        enableOfflineQueue: true,
        enableAutoPipelining: true,
        connectionName: `${prefix}webhooks-worker`,
      });
    }
    this.queueClient.on('error', () => undefined);
    this.workerClient.on('error', () => undefined);
    this.attempts = attemptsAllowed(settings.retryScheduleMs);
    this.lockDurationMs = Math.max(2 * settings.timeoutMs, 1_000);
  }

  private readonly connection: RedisStoreConnection;

  /** The keys of one endpoint's queue (see the class comment). */
  keysOf(endpointId: string): QueueKeys {
    const prefix = `${this.prefix}{wh:${endpointId}}`;
    return {
      prefix,
      jobs: `${prefix}:${QUEUE_NAME}:`,
      sizes: `${prefix}:sizes`,
      bytes: `${prefix}:bytes`,
      log: `${prefix}:log`,
    };
  }

  /**
   * Starts the workers of the endpoints that send (sends()), follows changes every half
   * second, and sweeps their counts (sweepStep).
   */
  async start(): Promise<void> {
    this.stopped = false;
    await this.sync();
    const tick = () => {
      this.syncTimer = setTimeout(() => {
        void this.sync()
          .then(() => this.sweepStep())
          .finally(() => {
            if (!this.stopped) {
              tick();
            }
          });
      }, SYNC_INTERVAL_MS);
      this.syncTimer.unref();
    };
    tick();
  }

  /**
   * Stops the workers and closes the queues. Gracefully, attempts in flight are aborted and
   * their jobs put back, due at once, for another process; with `force` they are left as they
   * are, and their jobs go back to waiting once their locks expire (what another process sees
   * of one that died).
   */
  async stop({ force = false }: { force?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.syncTimer) {
      clearTimeout(this.syncTimer);
      this.syncTimer = null;
    }
    await this.syncing?.catch(() => undefined);
    const ids = [...this.running.keys()];
    await Promise.all(ids.map((id) => this.stopWorker(id, force)));
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    await this.releasing;
    this.queues.clear();
    this.capped.clear();
    this.queueClient.disconnect();
    this.workerClient.disconnect();
  }

  /** Every endpoint as stored now (the fan-out reads them per batch). */
  endpointsNow(): Promise<EndpointRecord[]> {
    return this.endpoints.all();
  }

  /**
   * Queues events for one endpoint (the fan-out's call). Skips an unknown or disabled endpoint;
   * an endpoint whose pending deliveries would pass WEBHOOK_MAX_PENDING, or whose events would
   * take the bodies pending over WEBHOOK_MAX_BYTES while it has the most of them, is disabled
   * (`backlog`) instead (see fitting). `current` is the endpoint as the caller just read it
   * (the fan-out's endpointsNow); without it, it is read here. Once the events are added, the
   * endpoint is read again: one deleted meanwhile has its queue dropped (again).
   */
  async enqueue(
    endpointId: string,
    events: WebhookEvent[],
    current?: EndpointRecord,
  ): Promise<void> {
    if (events.length === 0) {
      return;
    }
    const record = current ?? (await this.endpoints.get(endpointId));
    if (!record || record.disabledReason !== null) {
      return;
    }
    const fits = await this.fitting(endpointId, events);
    if (fits.length > 0) {
      await this.add(endpointId, fits, true);
      // Deleted since `current` was read: its DELETE may have dropped the queue before this
      // add made it again, and nothing else would drop it now.
      if (!(await this.endpoints.get(endpointId))) {
        await this.drop(endpointId);
        return;
      }
    }
    if (fits.length < events.length) {
      // At its cap: what fits is kept, as the in-memory store keeps it, and nothing more.
      await this.disable(endpointId, 'backlog');
    }
  }

  /**
   * Adds jobs, counted in the backlog and indexed in the log first (a job never exists
   * uncounted, so its release always finds its count). `dedupe`: an event whose job exists is
   * neither counted nor indexed again (BullMQ keeps that job, too).
   */
  async add(endpointId: string, events: WebhookEvent[], dedupe: boolean): Promise<void> {
    await this.reserve(endpointId, events, dedupe);
    const queue = await this.queueOf(endpointId);
    await this.connection.run(() =>
      queue.addBulk(
        events.map((event) => ({
          name: event.type,
          data: { id: event.id, type: event.type, at: event.at, body: event.body },
          opts: this.jobOptions(event),
        })),
      ),
    );
  }

  /** A job's options: the event's id, the attempts, the schedule, the log's bounds. */
  jobOptions(event: WebhookEvent) {
    const kept = {
      age: Math.ceil(this.settings.retentionMs / 1000),
      count: this.settings.logLimit,
    };
    return {
      jobId: event.id,
      timestamp: event.at,
      attempts: this.attempts,
      backoff: { type: 'webhook' },
      removeOnComplete: kept,
      removeOnFail: kept,
      keepLogs: 2 * this.attempts,
    };
  }

  /** A delivery counts in the backlog again (a retry of one that finished). */
  recount(endpointId: string, event: WebhookEvent): Promise<void> {
    return this.reserve(endpointId, [event], false);
  }

  /** Counts events in the backlog and indexes them in the log (webhookReserve). */
  private async reserve(
    endpointId: string,
    events: WebhookEvent[],
    dedupe: boolean,
  ): Promise<void> {
    const keys = this.keysOf(endpointId);
    const args: (string | number)[] = [];
    for (const event of events) {
      args.push(event.id, Buffer.byteLength(event.body), event.at);
    }
    await this.connection.run(() =>
      this.scripts.webhookReserve(
        keys.sizes,
        keys.bytes,
        keys.log,
        keys.jobs,
        dedupe ? 1 : 0,
        this.settings.maxPending + 2 * this.settings.logLimit,
        ...args,
      ),
    );
  }

  /**
   * The first of `events` that fit within WEBHOOK_MAX_PENDING and WEBHOOK_MAX_BYTES, which
   * bounds the bodies the enabled endpoints have pending (a disabled endpoint's no
   * longer grow). While they do not fit, the enabled endpoint with the most pending bytes, when
   * it is another, is disabled (backlog): the one whose receiver is behind, not whichever
   * queued next. As the in-memory store does (makeRoom).
   */
  private async fitting(endpointId: string, events: WebhookEvent[]): Promise<WebhookEvent[]> {
    const others = (await this.endpoints.allCached())
      .filter((record) => record.disabledReason === null && record.id !== endpointId)
      .map((record) => record.id);
    const ids = [endpointId, ...others];
    const redis = this.connection.redis;
    const [pending, ...bytes] = await this.connection.run(() =>
      Promise.all([
        redis.hlen(this.keysOf(endpointId).sizes),
        ...ids.map((id) => redis.get(this.keysOf(id).bytes)),
      ]),
    );
    const held = new Map(ids.map((id, i) => [id, Number(bytes[i] ?? 0)]));
    let count = Number(pending);
    let total = [...held.values()].reduce((sum, value) => sum + value, 0);
    const fits: WebhookEvent[] = [];
    for (const event of events) {
      const size = Buffer.byteLength(event.body);
      if (count + 1 > this.settings.maxPending) {
        break;
      }
      while (total + size > this.settings.maxBytes) {
        const heaviest = heaviestBacklog(held, endpointId);
        if (heaviest === endpointId) {
          return fits;
        }
        await this.disable(heaviest, 'backlog');
        total -= held.get(heaviest) as number;
        held.delete(heaviest);
      }
      fits.push(event);
      count++;
      total += size;
      held.set(endpointId, (held.get(endpointId) as number) + size);
    }
    return fits;
  }

  /** Disables an endpoint for a reason of the deliveries' own, and says so once. */
  async disable(endpointId: string, reason: 'gone' | 'failing' | 'backlog'): Promise<void> {
    const now = Date.now();
    let changed: boolean;
    try {
      ({ changed } = await this.endpoints.update(endpointId, (record) =>
        disablesFor(record, reason) ? { ...record, disabledReason: reason, updatedAt: now } : null,
      ));
    } catch (error) {
      if (error instanceof StoreError && error.code === 'webhook_not_found') {
        return; // deleted meanwhile: nothing left to disable
      }
      throw error;
    }
    if (changed) {
      // The observer logs it (webhook-metrics.ts), as it logs each failed attempt.
      this.observer.disabled(endpointId, reason);
      void this.sync();
    }
  }

  /** The endpoint's queue in this process, made on first use, its global concurrency set. */
  async queueOf(endpointId: string): Promise<Queue<DeliveryJobData>> {
    let queue = this.queues.get(endpointId);
    if (!queue) {
      queue = new Queue<DeliveryJobData>(QUEUE_NAME, {
        connection: this.queueClient,
        prefix: this.keysOf(endpointId).prefix,
        streams: { events: { maxLen: EVENTS_KEPT } },
      });
      queue.on('error', (error) => this.logger.debug(`queue ${endpointId}: ${error.message}`));
      this.queues.set(endpointId, queue);
    }
    return queue;
  }

  /** Pending deliveries per endpoint (waiting, delayed, active), for the queue-depth gauge. */
  async pendingCounts(): Promise<Record<string, number>> {
    const records = await this.endpoints.allCached();
    const redis = this.connection.redis;
    const counts = await this.connection.run(() =>
      Promise.all(records.map((record) => redis.hlen(this.keysOf(record.id).sizes))),
    );
    return Object.fromEntries(records.map((record, i) => [record.id, counts[i]]));
  }

  /**
   * Drops an endpoint's queue and what is kept beside it, after stopping this process's
   * worker: other processes drop their workers within SYNC_INTERVAL_MS and clean up again.
   */
  async drop(endpointId: string): Promise<void> {
    await this.stopWorker(endpointId, false);
    const queue = await this.queueOf(endpointId);
    await this.connection.run(() => queue.obliterate({ force: true }));
    await queue.close();
    this.queues.delete(endpointId);
    this.capped.delete(endpointId);
    const keys = this.keysOf(endpointId);
    await this.connection.run(() =>
      Promise.all([
        this.connection.redis.del(keys.sizes),
        this.connection.redis.del(keys.bytes),
        this.connection.redis.del(keys.log),
      ]),
    );
  }

  /** Reads the lines of one job's log: its attempts that did not succeed, oldest first. */
  async attemptsOf(queue: Queue<DeliveryJobData>, jobId: string): Promise<AttemptLine[]> {
    const { logs } = await queue.getJobLogs(jobId, 0, -1, true);
    return logs.map((line) => JSON.parse(line) as AttemptLine);
  }

  /**
   * The attempt that succeeded, kept as the job's return value; null for a job not
   * completed (or completed before it was kept there: its log has it).
   */
  succeededAttempt(job: Job<DeliveryJobData>): AttemptLine | null {
    const value: unknown = job.returnvalue;
    return typeof value === 'object' &&
      value !== null &&
      typeof (value as AttemptLine).at === 'number'
      ? (value as AttemptLine)
      : null;
  }

  /** Newest first: [id, queued at, status] of one page of the endpoint's log. */
  async listPage(
    endpointId: string,
    after: { at: number; id: string } | null,
    status: string,
    limit: number,
  ): Promise<{ id: string; at: number; status: 'pending' | 'succeeded' | 'failed' }[]> {
    const keys = this.keysOf(endpointId);
    const flat = await this.connection.run(() =>
      this.scripts.webhookList(
        keys.log,
        keys.sizes,
        keys.jobs,
        after ? String(after.at) : '+inf',
        after ? after.id : '',
        status,
        limit,
      ),
    );
    const page: { id: string; at: number; status: 'pending' | 'succeeded' | 'failed' }[] = [];
    for (let i = 0; i < flat.length && page.length < limit; i += 3) {
      page.push({
        id: flat[i],
        at: Number(flat[i + 1]),
        status: flat[i + 2] as 'pending' | 'succeeded' | 'failed',
      });
    }
    return page;
  }

  /**
   * Brings this process's workers in line with the endpoints, when they changed: one for each
   * enabled endpoint, none for a disabled one, and for a deleted one its leftovers cleaned.
   */
  /**
   * Whether an enabled endpoint takes this type, as of the last sync (at most half a second
   * old while started): the sweeper asks it before reading a transcript.
   */
  wants(type: string): boolean {
    return this.known.some((record) => wants(record, type));
  }

  sync(): Promise<void> {
    if (!this.syncing) {
      this.syncing = this.syncOnce().finally(() => {
        this.syncing = null;
      });
    }
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    try {
      const version = await this.endpoints.version();
      if (version === this.seenVersion || this.stopped) {
        return;
      }
      const records = await this.endpoints.all();
      this.known = records;
      // Workers for the endpoints whose queues are sent (enabled, or draining a backlog).
      const sending = new Set(records.filter(sends).map((record) => record.id));
      const known = new Set(records.map((record) => record.id));
      for (const id of sending) {
        if (!this.running.has(id) && !this.stopped) {
          await this.startWorker(id);
        }
      }
      for (const id of [...this.running.keys()]) {
        if (!sending.has(id)) {
          if (known.has(id)) {
            void this.stopWorker(id, false);
          } else {
            // Deleted elsewhere: clean up again once this worker no longer touches the queue.
            void this.drop(id).catch((error: Error) =>
              this.logger.warn(`Cleaning up endpoint ${id}: ${error.message}`),
            );
          }
        }
      }
      this.seenVersion = version;
      if (this.syncFailing) {
        this.syncFailing = false;
        this.logger.log('Webhook endpoints are followed again');
      }
    } catch (error) {
      if (!this.syncFailing) {
        this.syncFailing = true;
        this.logger.error(
          `Cannot follow webhook endpoints: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
  }

  private async startWorker(endpointId: string): Promise<void> {
    const queue = await this.queueOf(endpointId);
    let capped = this.capped.get(endpointId);
    if (!capped) {
      capped = queue.setGlobalConcurrency(this.settings.maxInFlight);
      this.capped.set(endpointId, capped);
    }
    await capped;
    const worker = new Worker<DeliveryJobData>(
      QUEUE_NAME,
      (job, token, signal) => this.attempt(endpointId, job, token, signal),
      {
        connection: this.workerClient,
        prefix: this.keysOf(endpointId).prefix,
        concurrency: this.settings.maxInFlight,
        lockDuration: this.lockDurationMs,
        stalledInterval: this.lockDurationMs,
        // A job whose process died is sent again (by another), never failed for it.
        maxStalledCount: this.attempts + 10,
        settings: {
          backoffStrategy: (_attemptsMade, _type, error) =>
            error instanceof RetryLater ? error.delayMs : (this.settings.retryScheduleMs[0] ?? 0),
        },
      },
    );
    worker.on('error', (error) => this.logger.debug(`worker of ${endpointId}: ${error.message}`));
    worker.on('completed', (job) => this.release(endpointId, job.id));
    worker.on('failed', (job) => {
      if (job?.finishedOn) {
        this.release(endpointId, job.id);
      }
    });
    this.running.set(endpointId, { worker });
  }

  private async stopWorker(endpointId: string, force: boolean): Promise<void> {
    const running = this.running.get(endpointId);
    if (!running) {
      return;
    }
    this.running.delete(endpointId);
    if (!force) {
      // Attempts in flight are aborted and their jobs put back at once (see attempt), so a
      // stop, a disable or a delete does not wait out a slow receiver; fetching stops first,
      // or the worker would take a job put back again.
      await running.worker.pause(true).catch(() => undefined);
      running.worker.cancelAllJobs('stopping');
    }
    await running.worker.close(force).catch(() => undefined);
  }

  /**
   * A job finished: its bytes no longer count in the backlog. Uncounted together with the
   * others that finish meanwhile, one call per endpoint while the previous call is under way,
   * rather than one per job: until then the backlog counts it a little longer, which only
   * errs on the safe side.
   */
  private release(endpointId: string, jobId: string | undefined): void {
    if (!jobId) {
      return;
    }
    const ids = this.toRelease.get(endpointId);
    if (ids) {
      ids.push(jobId);
    } else {
      this.toRelease.set(endpointId, [jobId]);
    }
    this.releasing ??= this.releaseAll().finally(() => {
      this.releasing = null;
    });
  }

  private async releaseAll(): Promise<void> {
    // Those that finish in this turn of the event loop go in the first call.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.toRelease.size > 0) {
      const batch = this.toRelease;
      this.toRelease = new Map();
      await Promise.all(
        [...batch].map(async ([endpointId, ids]) => {
          const keys = this.keysOf(endpointId);
          try {
            await this.connection.run(() =>
              this.scripts.webhookRelease(keys.sizes, keys.bytes, ...ids),
            );
          } catch (error) {
            this.logger.warn(
              `Could not uncount ${ids.length} deliveries of ${endpointId}: ${error instanceof Error ? error.message : String(error)}`,
            );
          }
        }),
      );
    }
  }

  /**
   * Every SWEEP_EVERY_MS, one sweep step for each endpoint this process delivers for: a count
   * whose release was lost would otherwise stay for good, and count toward the endpoint's caps
   * (and the heaviest at the byte cap) however fast its receiver is.
   */
  private async sweepStep(): Promise<void> {
    const now = Date.now();
    if (this.stopped || now - this.sweptAt < SWEEP_EVERY_MS) {
      return;
    }
    this.sweptAt = now;
    for (const endpointId of this.running.keys()) {
      try {
        const { cursor } = await this.sweep(endpointId, this.sweepCursors.get(endpointId) ?? '0');
        this.sweepCursors.set(endpointId, cursor);
      } catch {
        // Redis is away: the next step tries again from the same cursor.
      }
    }
    for (const endpointId of this.sweepCursors.keys()) {
      if (!this.running.has(endpointId)) {
        this.sweepCursors.delete(endpointId);
        this.orphans.delete(endpointId);
      }
    }
  }

  /**
   * One step of an endpoint's sweep (SWEEP_LUA) from `cursor`: the next, '0' at the end. Counts
   * with no job found by an earlier step at least ORPHAN_AFTER_MS before `now`, and found so
   * again, are uncounted (ORPHAN_LUA); one found for the first time is remembered.
   */
  async sweep(
    endpointId: string,
    cursor = '0',
    now = this.clock(),
  ): Promise<{ cursor: string; uncounted: number }> {
    const keys = this.keysOf(endpointId);
    const [next, finished, orphans] = await this.connection.run(() =>
      this.scripts.webhookSweep(
        keys.sizes,
        keys.bytes,
        `${keys.jobs}completed`,
        `${keys.jobs}failed`,
        cursor,
        SWEEP_BATCH,
        keys.jobs,
      ),
    );
    const found = this.orphans.get(endpointId) ?? {
      since: new Map<string, number>(),
      seen: new Set<string>(),
    };
    this.orphans.set(endpointId, found);
    const overdue: string[] = [];
    for (const id of orphans) {
      found.seen.add(id);
      const since = found.since.get(id);
      if (since === undefined) {
        found.since.set(id, now);
      } else if (now - since >= ORPHAN_AFTER_MS) {
        overdue.push(id);
        found.since.delete(id);
      }
    }
    if (String(next) === '0') {
      // A pass over every count ended: one not found again in it got its job, or was released.
      for (const id of found.since.keys()) {
        if (!found.seen.has(id)) {
          found.since.delete(id);
        }
      }
      found.seen.clear();
    }
    const uncounted =
      Number(finished) +
      (overdue.length === 0
        ? 0
        : Number(
            await this.connection.run(() =>
              this.scripts.webhookOrphans(keys.sizes, keys.bytes, keys.jobs, ...overdue),
            ),
          ));
    if (uncounted > 0) {
      this.logger.warn(
        `Uncounted ${uncounted} deliveries of ${endpointId} that were no longer pending`,
      );
    }
    return { cursor: String(next), uncounted: Number(uncounted) };
  }

  /**
   * One attempt of one job: the endpoint as this process knows it (at most a second old),
   * the event signed with its secrets now, then what follows (see nextStep), kept on the job
   * (a line of its log, or its return value when it succeeded) and told to the observer. A throw is BullMQ's retry (RetryLater, its delay) or the
   * end (UnrecoverableError).
   */
  private async attempt(
    endpointId: string,
    job: Job<DeliveryJobData>,
    token: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<AttemptLine | null> {
    const record = await this.endpoints.cached(endpointId);
    if (!record) {
      // Deleted: the job is dropped (its queue goes with it).
      return null;
    }
    if (!sends(record)) {
      // Disabled since this worker took the job: it waits for the endpoint to be enabled.
      await job.moveToDelayed(Date.now() + PUT_BACK_MS, token);
      throw new DelayedError();
    }
    const at = this.clock();
    const event: WebhookEvent = {
      id: job.data.id,
      type: job.data.type as WebhookEventType,
      at: job.data.at,
      body: job.data.body,
    };
    const outcome = await this.sender.send(record.url, event, signingSecrets(record, at), signal);
    if (signal?.aborted) {
      // This process stops delivering to the endpoint: the job goes back without counting as
      // an attempt, for another process (or this endpoint's next worker). Due shortly, not at
      // once: a fetch already under way in this closing worker would take it again.
      await job.moveToDelayed(Date.now() + PUT_BACK_MS, token);
      throw new DelayedError();
    }
    const step = nextStep(outcome, job.attemptsMade + 1, this.settings.retryScheduleMs);
    const line: AttemptLine = {
      at,
      statusCode: outcome.statusCode,
      durationMs: outcome.durationMs,
      error: outcome.error,
      retryAt: step.kind === 'retry' ? Date.now() + step.delayMs : null,
    };
    if (step.kind !== 'succeeded') {
      await job.log(JSON.stringify(line));
    }
    const failingSince = await this.noteHealth(record, outcome.ok, at);
    this.observer.attempted(endpointId, outcome, step.kind);
    switch (step.kind) {
      case 'succeeded':
        return line; // the job's return value: its last attempt (see the class comment)
      case 'retry':
        throw new RetryLater(outcome, step.delayMs);
      case 'gone':
        await this.disable(endpointId, 'gone');
        throw new UnrecoverableError('status 410: the endpoint is gone');
      case 'failed':
        if (disablesForFailing(failingSince, Date.now(), this.settings.disableAfterMs)) {
          await this.disable(endpointId, 'failing');
        }
        throw new UnrecoverableError(outcome.error ?? `status ${outcome.statusCode}`);
    }
  }

  /**
   * Keeps the endpoint's health: failingSince set at the first failure after a success and
   * cleared by a success, lastSuccessAt (written at most once a second, not per delivery).
   * Answers failingSince as it stands.
   */
  private async noteHealth(
    record: EndpointRecord,
    ok: boolean,
    at: number,
  ): Promise<number | null> {
    try {
      return await this.writeHealth(record, ok, at);
    } catch (error) {
      // Deleted meanwhile, or Redis away: the attempt's outcome stands all the same.
      this.logger.debug(
        `Endpoint ${record.id}'s health not noted: ${error instanceof Error ? error.message : String(error)}`,
      );
      return record.failingSince;
    }
  }

  private async writeHealth(
    record: EndpointRecord,
    ok: boolean,
    at: number,
  ): Promise<number | null> {
    if (ok) {
      if (
        record.failingSince === null &&
        record.lastSuccessAt !== null &&
        at - record.lastSuccessAt < 1_000
      ) {
        return null;
      }
      await this.endpoints.update(record.id, (current) =>
        current.failingSince === null &&
        current.lastSuccessAt !== null &&
        at - current.lastSuccessAt < 1_000
          ? null
          : {
              ...current,
              failingSince: null,
              lastSuccessAt: Math.max(at, current.lastSuccessAt ?? 0),
            },
      );
      return null;
    }
    if (record.failingSince !== null) {
      return record.failingSince;
    }
    const { record: current } = await this.endpoints.update(record.id, (current) =>
      current.failingSince === null ? { ...current, failingSince: at } : null,
    );
    return current.failingSince;
  }
}
