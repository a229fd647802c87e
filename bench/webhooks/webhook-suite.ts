import { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { text } from '../http/scenarios';
import { spawnTracked, stopGroup } from '../lib/children';
import { fire, LoadResult, runLoad } from '../lib/load';
import { runPacedLoad } from '../lib/paced-load';
import { benchScript, SERVER_MAIN } from '../lib/paths';
import { cpuBetween, cpuSnapshot } from '../lib/proc-stats';
import { Configuration, RunningServer, startServer } from '../lib/server';
import { percentile, sleep } from '../lib/stats';
import type { ReceiverRequest, ReceiverStats } from './receiver';

/**
 * Issue 33's cost of webhooks, per configuration of the server itself (B, C, D, F), three
 * conditions side by side:
 *
 * - none: no endpoint; posts at full speed (as the HTTP suite's post scenario: 100-character
 *   messages rotating over 1,000 seeded conversations, 50 connections), then at a fixed rate,
 *   evenly paced (bench/lib/paced-load.ts; autocannon's overallRate spends each second's
 *   budget at full speed).
 * - one: one endpoint whose receiver answers 204 at once; the same load. Delivery lag is the
 *   receiver's time of arrival minus the event's `timestamp` (the change's time) for every
 *   message.created event, and the suite waits (up to `drainSeconds`) until every
 *   acknowledged post has been delivered, reporting how long that took.
 * - slow: two endpoints, one whose receiver answers only after the server's timeout
 *   (WEBHOOK_TIMEOUT_MS=2000, the receiver waits 3 s: every attempt times out and is retried),
 *   beside a responsive one. Post p99 at the fixed rate against none's, and the responsive
 *   endpoint's lag.
 *
 * The targets: one's full-speed post req/s at least 70% of none's in memory (B, C) and 50% on
 * Redis (D, F), its lag p99 under 1 s at that load; with the slow endpoint beside, the
 * responsive one's lag p99 under 1 s and post p99 within 10% of none's at the same fixed rate.
 *
 * Every run is a fresh start of the configuration, with API_KEYS set (webhooks need it) and
 * the API key on every request. The conditions alternate within a round (none one slow, then
 * slow one none, ...) and each figure is the median over the rounds, so that a drift of this
 * VM's speed hits all alike. The fixed rate is a quarter of none's full speed in the first round
 * (which runs none first), the same for every run of the configuration. The receivers run in
 * a process of their own (receiver.ts).
 */

export interface WebhookSettings {
  /** Full-speed posts before anything is measured (endpoints already made). */
  warmupSeconds: number;
  /** Each measured phase: full speed, then the fixed rate. */
  measureSeconds: number;
  rounds: number;
  connections: number;
  /** The longest wait after a phase for the responsive endpoint to get every acknowledged post. */
  drainSeconds: number;
}

export const FULL_WEBHOOKS: WebhookSettings = {
  warmupSeconds: 3,
  measureSeconds: 7,
  rounds: 3,
  connections: 50,
  drainSeconds: 30,
};

export const QUICK_WEBHOOKS: WebhookSettings = {
  warmupSeconds: 2,
  measureSeconds: 5,
  rounds: 1,
  connections: 50,
  drainSeconds: 30,
};

/** The targets. */
export const MIN_ONE_OVER_NONE_IN_MEMORY = 0.7;
export const MIN_ONE_OVER_NONE_ON_REDIS = 0.5;
export const MAX_LAG_P99_MS = 1_000;
export const MAX_SLOW_P99_RATIO = 1.1;

/**
 * The fixed rate, as a share of none's full speed: a quarter. Delivering each post to an
 * endpoint about doubles the work per post on these two cores (one endpoint's full speed is
 * 0.5-0.6 of none's), so half of none's speed, evenly paced, is at or past the capacity of the
 * conditions with endpoints, where any latency grows without bound; a quarter loads them about
 * as much as half loads none. (Measured: docs/performance.md, "Webhooks".)
 */
export const FIXED_RATE_OF_NONE = 0.25;

/** The server gives up on an attempt after this; the slow receiver answers after SLOW_ANSWER_MS. */
export const WEBHOOK_TIMEOUT_MS = 2_000;
export const SLOW_ANSWER_MS = 3_000;

const API_KEY = 'bench-webhooks-key-0123456789abcdef';
const AUTH = { authorization: `Bearer ${API_KEY}` };
const JSON_AUTH = { ...AUTH, 'content-type': 'application/json' };
const CONVERSATIONS = 1_000;

/** For every condition alike: only the endpoints differ. */
const ENV: Record<string, string> = {
  API_KEYS: API_KEY,
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
  WEBHOOK_TIMEOUT_MS: String(WEBHOOK_TIMEOUT_MS),
  // The load is one API key, far over its default limit of 6,000 a minute.
  RATE_LIMIT_API_KEY_MAX: '0',
  // The timing-out endpoint gets nothing through, so its queue holds every post of the run
  // (about 200,000 at 20,000 posts/s): at the default caps it would be disabled (backlog)
  // during the full-speed phase, and the fixed rate would no longer be beside it.
  WEBHOOK_MAX_PENDING: '10000000',
  WEBHOOK_MAX_BYTES: '4096mb',
};

export const CONDITIONS = ['none', 'one', 'slow'] as const;
export type Condition = (typeof CONDITIONS)[number];

export const CONDITION_TITLES: Record<Condition, string> = {
  none: 'no endpoint',
  one: 'one responsive endpoint',
  slow: 'a responsive endpoint beside one that times out',
};

export interface DeliveryResult {
  /** message.created events the responsive endpoint got for this phase's posts, once each. */
  delivered: number;
  /** Posts answered 2xx in the phase (posts still in flight at its end may be delivered too). */
  acknowledged: number;
  duplicates: number;
  /** Over max(acknowledged, delivered) events, an undelivered one endless (null). */
  lagP50Ms: number | null;
  lagP99Ms: number | null;
  lagMaxMs: number | null;
  /** From the phase's end until every acknowledged post was delivered; null: not in `drainSeconds`. */
  drainSeconds: number | null;
}

export interface PhaseResult {
  requests: number;
  requestsPerSecond: number;
  /** Full speed: autocannon's (1 ms resolution); fixed rate: over every response, not rounded. */
  p50Ms: number;
  p99Ms: number;
  /** Errors, timeouts and non-2xx answers. */
  failed: number;
  /** The server's processes (all), its primary alone (workers > 0), the Redis servers. */
  cpuMicrosPerRequest: number;
  primaryCpuMicrosPerRequest?: number;
  redisCpuMicrosPerRequest?: number;
  /** The receivers' process (a harness cost on the same cores; none: about 0). */
  receiverCpuMicrosPerRequest: number;
  /** The responsive endpoint (one, slow). */
  delivery?: DeliveryResult;
}

export interface WebhookRun {
  condition: Condition;
  round: number;
  full?: PhaseResult;
  fixed?: PhaseResult & { rate: number };
  /** Requests the slow endpoint's receiver got (every attempt) over the whole run. */
  slowRequests?: number;
  invalid?: string;
  error?: string;
}

export interface ConditionSummary {
  condition: Condition;
  /** Medians over the rounds. */
  fullRequestsPerSecond: number;
  fullP99Ms: number;
  fullCpuMicrosPerRequest: number;
  fullPrimaryCpuMicrosPerRequest: number | null;
  fullRedisCpuMicrosPerRequest: number | null;
  fullReceiverCpuMicrosPerRequest: number;
  fixedP50Ms: number;
  fixedP99Ms: number;
  /** The responsive endpoint; lag medians over the rounds, an endless one (null) counted as such. */
  fullLagP50Ms?: number | null;
  fullLagP99Ms?: number | null;
  fixedLagP50Ms?: number | null;
  fixedLagP99Ms?: number | null;
  /** Summed over the rounds, full-speed phases. */
  fullDelivered?: number;
  fullAcknowledged?: number;
  /** The longest drain after a full-speed phase; null: some did not drain in time. */
  fullDrainSeconds?: number | null;
  fixedDelivered?: number;
  fixedAcknowledged?: number;
  slowRequests?: number;
}

export interface WebhookConfigurationResult {
  configuration: string;
  label: string;
  inMemory: boolean;
  /** The fixed rate of every run: FIXED_RATE_OF_NONE of none's full speed in the first round. */
  rate: number;
  runs: WebhookRun[];
  conditions: ConditionSummary[];
  /** one / none, full-speed req/s (medians). */
  throughputRatio: number;
  /** The same per round: how steady it was. */
  roundThroughputRatios: number[];
  /** slow / none, post p99 at the fixed rate (medians). */
  fixedP99Ratio: number;
  roundFixedP99Ratios: number[];
  /** Why not to judge by it, if so. */
  invalid?: string;
}

export interface WebhookResults {
  settings: WebhookSettings;
  configurations: WebhookConfigurationResult[];
}

/**
 * The configurations the webhooks benchmark runs in: the server itself, each store, and A, the
 * bare node:http baseline with the least webhook delivery (baselines/webhook-core.ts), which
 * says what delivering costs on this machine whatever the server.
 */
export const webhookConfigurations = (configurations: Configuration[]): Configuration[] =>
  configurations.filter(
    (c) =>
      c.key === 'A' ||
      (c.script === SERVER_MAIN && (!c.scenarios || c.scenarios.includes('webhooks'))),
  );

/**
 * Seconds the runs of one configuration take, about (for main.ts's estimate): each run's start,
 * seeding, stop and drains took some 12 s in a smoke run on B and D, a few more when the
 * deliveries fall behind the posts.
 */
export const webhookSecondsPerConfiguration = (settings: WebhookSettings): number =>
  settings.rounds * CONDITIONS.length * (16 + settings.warmupSeconds + 2 * settings.measureSeconds);

/** A request to the receivers without its `ask` number (Omit each member of the union). */
type Asked = ReceiverRequest extends infer R ? (R extends unknown ? Omit<R, 'ask'> : never) : never;

/** The receivers' process (receiver.ts), asked over IPC. */
class Receivers {
  private asks = 0;
  private readonly waiting = new Map<number, (answer: unknown) => void>();

  private constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
    readonly responsivePort: number,
    readonly slowPort: number,
  ) {
    child.on('message', (message: { kind: string; ask?: number }) => {
      const answer = message.ask === undefined ? undefined : this.waiting.get(message.ask);
      if (answer && message.ask !== undefined) {
        this.waiting.delete(message.ask);
        answer(message);
      }
    });
  }

  static async start(): Promise<Receivers> {
    const child = spawnTracked(
      process.execPath,
      [benchScript('webhooks/receiver.js'), String(SLOW_ANSWER_MS)],
      { env: { PATH: process.env.PATH }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    );
    const ready = await new Promise<{ responsivePort: number; slowPort: number }>(
      (resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error('the webhook receivers did not start')),
          10_000,
        );
        child.once('exit', (code) => reject(new Error(`the webhook receivers exited (${code})`)));
        child.once('message', (message: { responsivePort: number; slowPort: number }) => {
          clearTimeout(timer);
          resolve(message);
        });
      },
    );
    return new Receivers(child, child.pid as number, ready.responsivePort, ready.slowPort);
  }

  private ask<T>(request: Asked): Promise<T> {
    const ask = ++this.asks;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the webhook receivers did not answer')),
        10_000,
      );
      this.waiting.set(ask, (answer) => {
        clearTimeout(timer);
        resolve(answer as T);
      });
      this.child.send({ ...request, ask });
    });
  }

  stats(path: string, since: number, expected: number): Promise<ReceiverStats> {
    return this.ask({ kind: 'stats', path, since, expected });
  }

  clear(): Promise<void> {
    return this.ask({ kind: 'clear' });
  }

  stop(): Promise<void> {
    return stopGroup(this.child, 0);
  }
}

/** Creates the conversations the posts rotate over (with the API key). */
async function seedConversations(baseUrl: string): Promise<string[]> {
  const ids: string[] = [];
  await fire(baseUrl, CONVERSATIONS, {
    method: 'POST',
    path: '/api/conversations',
    headers: AUTH,
    onResponse: (_status, body) => ids.push((JSON.parse(body) as { id: string }).id),
  });
  return ids;
}

const BODIES = Array.from({ length: 64 }, (_, i) =>
  JSON.stringify({ sender: i % 2 === 0 ? 'customer' : 'agent', content: text(i) }),
);

/** The post scenario's request (http/scenarios.ts), with the API key. */
function postMessage(ids: string[]): autocannon.Request {
  let nextId = 0;
  let nextBody = 0;
  return {
    method: 'POST',
    headers: JSON_AUTH,
    setupRequest: (request) => ({
      ...request,
      path: `/api/conversations/${ids[nextId++ % ids.length]}/messages`,
      body: BODIES[nextBody++ % BODIES.length],
    }),
  };
}

async function createEndpoint(baseUrl: string, url: string): Promise<void> {
  const response = await fetch(`${baseUrl}/api/webhooks`, {
    method: 'POST',
    headers: JSON_AUTH,
    body: JSON.stringify({ url, description: 'bench' }),
  });
  if (response.status !== 201) {
    throw new Error(`POST /api/webhooks: ${response.status} ${await response.text()}`);
  }
}

/** The endpoints as the server has them at the end of a run: each must still be enabled. */
async function listEndpoints(
  baseUrl: string,
): Promise<{ url: string; status: string; disabledReason: string | null }[]> {
  const response = await fetch(`${baseUrl}/api/webhooks`, { headers: AUTH });
  if (response.status !== 200) {
    throw new Error(`GET /api/webhooks: ${response.status} ${await response.text()}`);
  }
  return ((await response.json()) as { webhooks: never[] }).webhooks;
}

const acknowledgedOf = (load: LoadResult) =>
  Object.entries(load.statusCodes)
    .filter(([code]) => code.startsWith('2'))
    .reduce((sum, [, count]) => sum + count, 0);

const failedOf = (load: LoadResult) => load.errors + load.timeouts + load.non2xx;

let runs = 0;

/** One fresh start of a configuration under one condition: warm-up, full speed, fixed rate. */
async function measureRun(
  configuration: Configuration,
  condition: Condition,
  round: number,
  rate: number | null,
  receivers: Receivers,
  settings: WebhookSettings,
): Promise<WebhookRun> {
  const run: WebhookRun = { condition, round };
  const withWebhooks = { ...configuration, env: { ...configuration.env, ...ENV } };
  const tag = `${configuration.key}-${++runs}`;
  const fastPath = `/fast/${tag}`;
  const slowPath = `/slow/${tag}`;
  await receivers.clear();
  const server: RunningServer = await startServer(withWebhooks);
  try {
    const ids = await seedConversations(server.baseUrl);
    // Made after the seeding, so that only the posts make deliveries.
    if (condition === 'slow') {
      await createEndpoint(server.baseUrl, `http://127.0.0.1:${receivers.slowPort}${slowPath}`);
    }
    if (condition !== 'none') {
      await createEndpoint(
        server.baseUrl,
        `http://127.0.0.1:${receivers.responsivePort}${fastPath}`,
      );
    }
    // Full speed through autocannon; a fixed rate evenly paced (paced-load.ts says why).
    const load = (seconds: number, rate?: number, onLatency?: (ms: number) => void) =>
      rate
        ? runPacedLoad({
            url: server.baseUrl,
            request: postMessage(ids),
            duration: seconds,
            connections: settings.connections,
            rate,
            onLatency,
          })
        : runLoad({
            url: server.baseUrl,
            requests: [postMessage(ids)],
            duration: seconds,
            connections: settings.connections,
            onLatency,
          });

    /**
     * Waits until the responsive endpoint has every post acknowledged since `since`, or
     * `drainSeconds` have passed; then its lag over them.
     */
    const drain = async (since: number, acknowledged: number): Promise<DeliveryResult> => {
      const ended = performance.now();
      const deadline = ended + settings.drainSeconds * 1000;
      let stats = await receivers.stats(fastPath, since, acknowledged);
      while (stats.delivered < acknowledged && performance.now() < deadline) {
        await sleep(50);
        stats = await receivers.stats(fastPath, since, acknowledged);
      }
      const drained = stats.delivered >= acknowledged;
      return {
        delivered: stats.delivered,
        acknowledged,
        duplicates: stats.duplicates,
        lagP50Ms: stats.lagP50Ms,
        lagP99Ms: stats.lagP99Ms,
        lagMaxMs: stats.lagMaxMs,
        drainSeconds: drained ? (performance.now() - ended) / 1000 : null,
      };
    };

    const warmupStart = Date.now();
    const warmup = await load(settings.warmupSeconds);
    if (condition !== 'none') {
      await drain(warmupStart, acknowledgedOf(warmup));
    }

    /** A measured phase: its load with the CPU the server's processes and Redis spent on it. */
    const { storeCpuSeconds } = configuration;
    const pids = server.pids();
    const measured = async (
      rate?: number,
      onLatency?: (ms: number) => void,
    ): Promise<{ result: LoadResult; phase: PhaseResult }> => {
      const before = cpuSnapshot(pids);
      const receiverBefore = cpuSnapshot([receivers.pid]);
      const redisBefore = (await storeCpuSeconds?.()) ?? 0;
      const result = await load(settings.measureSeconds, rate, onLatency);
      const after = cpuSnapshot(server.pids());
      const receiverAfter = cpuSnapshot([receivers.pid]);
      const redisAfter = (await storeCpuSeconds?.()) ?? 0;
      const perRequest = (seconds: number) => (seconds * 1e6) / Math.max(result.requests, 1);
      return {
        result,
        phase: {
          requests: result.requests,
          requestsPerSecond: result.requestsPerSecond,
          p50Ms: result.p50,
          p99Ms: result.p99,
          failed: failedOf(result),
          cpuMicrosPerRequest: perRequest(cpuBetween(before, after)),
          receiverCpuMicrosPerRequest: perRequest(cpuBetween(receiverBefore, receiverAfter)),
          ...(configuration.workers > 0
            ? { primaryCpuMicrosPerRequest: perRequest(cpuBetween(before, after, [server.pid])) }
            : {}),
          ...(storeCpuSeconds
            ? { redisCpuMicrosPerRequest: perRequest(redisAfter - redisBefore) }
            : {}),
        },
      };
    };

    const fullStart = Date.now();
    const full = await measured();
    run.full = full.phase;
    if (condition !== 'none') {
      run.full.delivery = await drain(fullStart, acknowledgedOf(full.result));
    }

    // The fixed rate: none's first run sets it from its own full speed. Latency over every
    // response, not autocannon's histogram rounded to 1 ms.
    const fixedRate =
      rate ?? Math.max(1, Math.floor(full.result.requestsPerSecond * FIXED_RATE_OF_NONE));
    const latencies: number[] = [];
    const fixedStart = Date.now();
    const fixed = await measured(fixedRate, (ms) => latencies.push(ms));
    latencies.sort((a, b) => a - b);
    run.fixed = {
      ...fixed.phase,
      rate: fixedRate,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
    };
    if (condition !== 'none') {
      run.fixed.delivery = await drain(fixedStart, acknowledgedOf(fixed.result));
    }
    const { requests, malformed } = await receivers.stats(slowPath, 0, 0);
    if (condition === 'slow') {
      run.slowRequests = requests;
    }

    const invalid: string[] = [];
    for (const [name, phase] of [
      ['warm-up', { failed: failedOf(warmup) }],
      ['full speed', run.full],
      ['fixed rate', run.fixed],
    ] as const) {
      if (phase.failed > 0) {
        invalid.push(`${name}: ${phase.failed} requests failed`);
      }
    }
    if (malformed > 0) {
      invalid.push(`the receivers could not read ${malformed} requests`);
    }
    for (const endpoint of await listEndpoints(server.baseUrl)) {
      if (endpoint.status !== 'enabled') {
        invalid.push(`endpoint ${endpoint.url} ${endpoint.status} (${endpoint.disabledReason})`);
      }
    }
    if (server.pids().length !== pids.length) {
      invalid.push(
        `server processes changed during the run (${pids.length} → ${server.pids().length})`,
      );
    }
    if (invalid.length > 0) {
      run.invalid = invalid.join('; ');
    }
    return run;
  } finally {
    await server.stop();
  }
}

/** The median of numbers where null stands for endless (an undelivered event's lag). */
function medianLag(values: (number | null | undefined)[]): number | null {
  const sorted = values
    .filter((v): v is number | null => v !== undefined)
    .map((v) => (v === null ? Number.POSITIVE_INFINITY : v))
    .sort((a, b) => a - b);
  if (sorted.length === 0) {
    return null;
  }
  const middle = sorted.length >> 1;
  const value =
    sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  return Number.isFinite(value) ? value : null;
}

function medianOf(values: (number | undefined)[]): number {
  const finite = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  finite.sort((a, b) => a - b);
  if (finite.length === 0) {
    return Number.NaN;
  }
  const middle = finite.length >> 1;
  return finite.length % 2 === 1 ? finite[middle] : (finite[middle - 1] + finite[middle]) / 2;
}

function summarize(condition: Condition, runs: WebhookRun[]): ConditionSummary {
  const done = runs.filter((r) => r.condition === condition && r.full && r.fixed);
  const nullable = (value: number) => (Number.isNaN(value) ? null : value);
  const summary: ConditionSummary = {
    condition,
    fullRequestsPerSecond: medianOf(done.map((r) => r.full?.requestsPerSecond)),
    fullP99Ms: medianOf(done.map((r) => r.full?.p99Ms)),
    fullCpuMicrosPerRequest: medianOf(done.map((r) => r.full?.cpuMicrosPerRequest)),
    fullPrimaryCpuMicrosPerRequest: nullable(
      medianOf(done.map((r) => r.full?.primaryCpuMicrosPerRequest)),
    ),
    fullRedisCpuMicrosPerRequest: nullable(
      medianOf(done.map((r) => r.full?.redisCpuMicrosPerRequest)),
    ),
    fullReceiverCpuMicrosPerRequest: medianOf(done.map((r) => r.full?.receiverCpuMicrosPerRequest)),
    fixedP50Ms: medianOf(done.map((r) => r.fixed?.p50Ms)),
    fixedP99Ms: medianOf(done.map((r) => r.fixed?.p99Ms)),
  };
  if (condition !== 'none') {
    const full = done.map((r) => r.full?.delivery);
    const fixed = done.map((r) => r.fixed?.delivery);
    const sum = (list: (DeliveryResult | undefined)[], pick: (d: DeliveryResult) => number) =>
      list.reduce((total, d) => total + (d ? pick(d) : 0), 0);
    const drains = full.map((d) => d?.drainSeconds);
    Object.assign(summary, {
      fullLagP50Ms: medianLag(full.map((d) => d?.lagP50Ms)),
      fullLagP99Ms: medianLag(full.map((d) => d?.lagP99Ms)),
      fixedLagP50Ms: medianLag(fixed.map((d) => d?.lagP50Ms)),
      fixedLagP99Ms: medianLag(fixed.map((d) => d?.lagP99Ms)),
      fullDelivered: sum(full, (d) => d.delivered),
      fullAcknowledged: sum(full, (d) => d.acknowledged),
      fullDrainSeconds: drains.some((s) => s === null)
        ? null
        : Math.max(...drains.map((s) => s ?? 0)),
      fixedDelivered: sum(fixed, (d) => d.delivered),
      fixedAcknowledged: sum(fixed, (d) => d.acknowledged),
    });
  }
  if (condition === 'slow') {
    summary.slowRequests = done.reduce((total, r) => total + (r.slowRequests ?? 0), 0);
  }
  return summary;
}

const lagText = (value: number | null | undefined) =>
  value === undefined ? '–' : value === null ? 'not all delivered' : `${value.toFixed(0)} ms`;

function describe(run: WebhookRun): string {
  if (!run.full || !run.fixed) {
    return `FAILED ${run.error ?? run.invalid ?? ''}`;
  }
  const parts = [
    `${Math.round(run.full.requestsPerSecond)} posts/s (p99 ${run.full.p99Ms} ms, ${run.full.cpuMicrosPerRequest.toFixed(0)} µs CPU/req${run.full.primaryCpuMicrosPerRequest === undefined ? '' : `, primary ${run.full.primaryCpuMicrosPerRequest.toFixed(0)}`}${run.full.redisCpuMicrosPerRequest === undefined ? '' : `, Redis ${run.full.redisCpuMicrosPerRequest.toFixed(0)}`})`,
  ];
  const delivery = run.full.delivery;
  if (delivery) {
    parts.push(
      `lag p50 ${lagText(delivery.lagP50Ms)} p99 ${lagText(delivery.lagP99Ms)}, ${delivery.delivered} of ${delivery.acknowledged} delivered, ${delivery.drainSeconds === null ? 'NOT drained in time' : `drained in ${delivery.drainSeconds.toFixed(1)} s`}`,
    );
  }
  parts.push(
    `@${run.fixed.rate}/s p50 ${run.fixed.p50Ms.toFixed(2)} ms p99 ${run.fixed.p99Ms.toFixed(2)} ms`,
  );
  if (run.fixed.delivery) {
    parts.push(
      `lag p50 ${lagText(run.fixed.delivery.lagP50Ms)} p99 ${lagText(run.fixed.delivery.lagP99Ms)}`,
    );
  }
  if (run.slowRequests !== undefined) {
    parts.push(`slow endpoint: ${run.slowRequests} attempts`);
  }
  if (run.invalid) {
    parts.push(`INVALID: ${run.invalid}`);
  }
  return parts.join(', ');
}

async function measureConfiguration(
  configuration: Configuration,
  settings: WebhookSettings,
  receivers: Receivers,
  log: (line: string) => void,
): Promise<WebhookConfigurationResult> {
  const runs: WebhookRun[] = [];
  let rate: number | null = null;
  for (let round = 1; round <= settings.rounds; round++) {
    // none one slow, slow one none, ...: none runs first in round 1 and sets the fixed rate.
    const order = round % 2 === 1 ? CONDITIONS : [...CONDITIONS].reverse();
    for (const condition of order) {
      let run: WebhookRun;
      try {
        run = await measureRun(configuration, condition, round, rate, receivers, settings);
        if (rate === null && condition === 'none') {
          rate = run.fixed?.rate ?? null;
        }
      } catch (error) {
        run = {
          condition,
          round,
          error: error instanceof Error ? error.message : String(error),
          invalid: 'failed during the run',
        };
      }
      runs.push(run);
      log(
        `[webhooks] ${configuration.label} round ${round}/${settings.rounds} ${condition}: ${describe(run)}`,
      );
    }
  }
  const conditions = CONDITIONS.map((condition) => summarize(condition, runs));
  const [none, one, slow] = conditions;
  const inRound = (round: number, condition: Condition) =>
    runs.find((r) => r.round === round && r.condition === condition);
  const rounds = Array.from({ length: settings.rounds }, (_, i) => i + 1);
  const roundRatios = (pick: (r: WebhookRun | undefined) => number | undefined, top: Condition) =>
    rounds.map(
      (round) => (pick(inRound(round, top)) ?? NaN) / (pick(inRound(round, 'none')) ?? NaN),
    );
  const invalid = runs
    .filter((r) => r.invalid)
    .map(
      (r) =>
        `round ${r.round} ${r.condition}: ${r.invalid}${r.error ? ` (${r.error.split('\n')[0]})` : ''}`,
    );
  return {
    configuration: configuration.key,
    label: configuration.label,
    inMemory: configuration.env.STORE !== 'redis',
    rate: rate ?? Number.NaN,
    runs,
    conditions,
    throughputRatio: one.fullRequestsPerSecond / none.fullRequestsPerSecond,
    roundThroughputRatios: roundRatios((r) => r?.full?.requestsPerSecond, 'one'),
    fixedP99Ratio: slow.fixedP99Ms / none.fixedP99Ms,
    roundFixedP99Ratios: roundRatios((r) => r?.fixed?.p99Ms, 'slow'),
    ...(invalid.length > 0 ? { invalid: invalid.join('; ') } : {}),
  };
}

export async function runWebhookSuite(
  configurations: Configuration[],
  settings: WebhookSettings,
  log: (line: string) => void,
): Promise<WebhookResults> {
  const receivers = await Receivers.start();
  const results: WebhookConfigurationResult[] = [];
  try {
    for (const configuration of webhookConfigurations(configurations)) {
      results.push(await measureConfiguration(configuration, settings, receivers, log));
    }
  } finally {
    await receivers.stop();
  }
  return { settings, configurations: results };
}

/** The one-endpoint throughput target of a configuration: 70% in memory, 50% on Redis. */
export const minThroughputRatio = (result: WebhookConfigurationResult): number =>
  result.inMemory ? MIN_ONE_OVER_NONE_IN_MEMORY : MIN_ONE_OVER_NONE_ON_REDIS;

const num = (value: number | null | undefined, digits = 0) =>
  value === null || value === undefined || !Number.isFinite(value)
    ? '–'
    : value.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });

const lagCell = (value: number | null | undefined) =>
  value === undefined ? '–' : value === null ? '∞ (not all delivered)' : num(value);

export function webhooksMarkdown(results: WebhookResults): string[] {
  const { rounds, warmupSeconds, measureSeconds, drainSeconds, connections } = results.settings;
  const lines = [
    `### Webhooks (posts with no endpoint, one responsive endpoint, a responsive one beside one that times out; median of ${rounds} fresh start${rounds > 1 ? 's' : ''} per condition)`,
    '',
    `Every run a fresh start with API_KEYS (the key on every request), WEBHOOK_ALLOW_PRIVATE_NETWORKS=true, WEBHOOK_TIMEOUT_MS=${WEBHOOK_TIMEOUT_MS}, and WEBHOOK_MAX_PENDING and WEBHOOK_MAX_BYTES past what a run queues (a run that ends with an endpoint disabled is invalid); 1,000 conversations seeded, then the endpoints made (so only the posts are delivered), ${warmupSeconds} s of posts at full speed (its deliveries drained before measuring), ${measureSeconds} s at full speed (${connections} connections, 100-character posts rotating over the conversations), then ${measureSeconds} s at the fixed rate (${FIXED_RATE_OF_NONE * 100}% of none's full speed in round 1, evenly paced: request n due at n / rate, its latency counted from then). The receivers (HTTP/1.1 read off node:net on 127.0.0.1, in a process of their own: on the same cores, their CPU is taken from the server; receiver.ts) answer 204 at once, the slow one after ${SLOW_ANSWER_MS / 1000} s. Lag: arrival at the responsive receiver − the event's \`timestamp\`, over every message.created event of the phase's posts (an undelivered one counts as endless); after each phase the bench waits up to ${drainSeconds} s for every acknowledged post to be delivered. Conditions alternate within a round (none one slow, slow one none, ...).`,
    '',
    '| Configuration | Endpoints | full speed posts/s | p99 ms | CPU µs/post (primary; Redis) | receivers µs/post | lag p50 / p99 ms | delivered / acknowledged (drain s) | fixed rate posts/s | p50 / p99 ms | lag p50 / p99 ms |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const result of results.configurations) {
    for (const c of result.conditions) {
      const cpu = `${num(c.fullCpuMicrosPerRequest)}${c.fullPrimaryCpuMicrosPerRequest === null ? '' : ` (${num(c.fullPrimaryCpuMicrosPerRequest)}${c.fullRedisCpuMicrosPerRequest === null ? '' : `; ${num(c.fullRedisCpuMicrosPerRequest)}`})`}`;
      const delivered =
        c.fullDelivered === undefined
          ? '–'
          : `${num(c.fullDelivered)} / ${num(c.fullAcknowledged)} (${c.fullDrainSeconds === null || c.fullDrainSeconds === undefined ? `> ${drainSeconds}` : num(c.fullDrainSeconds, 1)})`;
      lines.push(
        `| ${result.label} | ${CONDITION_TITLES[c.condition]} | ${num(c.fullRequestsPerSecond)} | ${num(c.fullP99Ms)} | ${cpu} | ${num(c.fullReceiverCpuMicrosPerRequest)} | ${c.condition === 'none' ? '–' : `${lagCell(c.fullLagP50Ms)} / ${lagCell(c.fullLagP99Ms)}`} | ${delivered} | ${num(result.rate)} | ${num(c.fixedP50Ms, 2)} / ${num(c.fixedP99Ms, 2)} | ${c.condition === 'none' ? '–' : `${lagCell(c.fixedLagP50Ms)} / ${lagCell(c.fixedLagP99Ms)}`} |`,
      );
    }
  }
  lines.push('');
  for (const result of results.configurations) {
    const slow = result.conditions.find((c) => c.condition === 'slow');
    const range = (ratios: number[]) => {
      const finite = ratios.filter((r) => Number.isFinite(r));
      return finite.length > 1
        ? ` (per round ${Math.min(...finite).toFixed(2)}–${Math.max(...finite).toFixed(2)})`
        : '';
    };
    lines.push(
      `- ${result.label}: one/none full-speed posts/s ${num(result.throughputRatio, 2)}${range(result.roundThroughputRatios)} (target ≥ ${minThroughputRatio(result)}); slow/none post p99 at ${num(result.rate)}/s ${num(result.fixedP99Ratio, 3)}${range(result.roundFixedP99Ratios)} (target ≤ ${MAX_SLOW_P99_RATIO}); the slow endpoint got ${num(slow?.slowRequests)} attempts in all.${result.invalid ? ` **INVALID**: ${result.invalid}` : ''}`,
    );
  }
  return lines;
}
