import { Configuration } from '../lib/server';
import { benchScript, SERVER_MAIN } from '../lib/paths';
import { deleteKeys, redisCpuSeconds } from '../lib/redis';
import { BenchRedisCluster } from '../lib/redis-cluster';
import { BASELINE_SCENARIOS } from './scenarios';

/** D's Redis: REDIS_URL, or the usual local one. */
export const BENCH_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const RUN = Date.now().toString(36);
let starts = 0;

/** F's Redis Cluster, started once for F and FW together (see `setup`) and stopped after. */
let cluster: Promise<BenchRedisCluster> | null = null;
let clusterNow: BenchRedisCluster | null = null;

function runningCluster(): BenchRedisCluster {
  if (!clusterNow) {
    throw new Error('the bench Redis Cluster is not running (Configuration.setup not called)');
  }
  return clusterNow;
}

const onCluster = (key: string, label: string, env: Record<string, string>): Configuration => ({
  key,
  label,
  script: SERVER_MAIN,
  env: { STORE: 'redis', ...env },
  workers: 2,
  setup: async (log) => {
    cluster ??= BenchRedisCluster.start(log);
    clusterNow = await cluster;
  },
  teardown: async () => {
    const stopping = cluster;
    cluster = null;
    clusterNow = null;
    await (await stopping?.catch(() => null))?.stop();
  },
  // REDIS_URL must stay unset: both together are a configuration error.
  perStart: () => ({
    REDIS_CLUSTER_NODES: runningCluster().seeds,
    REDIS_KEY_PREFIX: `bench:${RUN}:${starts++}:`,
  }),
  // The cluster is the bench's own: every start begins on an empty one.
  afterStop: () => runningCluster().flush(),
  storeCpuSeconds: () => runningCluster().cpuSeconds(),
  masterCommandCalls: () => runningCluster().masterCommandCalls(),
});

/**
 * What the HTTP scenarios compare, in the order they alternate within each round. Every
 * configuration gets HOST=127.0.0.1, a free PORT, LOG_LEVEL=silent, RATE_LIMIT_MAX=0 (L
 * overrides it; see lib/server.ts). A, E, N, NX and X are baselines in baselines/, sharing
 * chat-core.ts: N the leanest NestJS app doing E's work, X E and NX N with the server's
 * production features by hand (production-features.ts).
 * D needs a Redis server at BENCH_REDIS_URL; F and FW start a Redis Cluster of their own
 * (lib/redis-cluster.ts: six redis-server processes, three masters and three replicas).
 */
export const CONFIGURATIONS: Configuration[] = [
  {
    key: 'A',
    label: 'A node:http',
    script: benchScript('baselines/node-http-server.js'),
    env: {},
    workers: 0,
  },
  {
    key: 'E',
    label: 'E Express 5',
    script: benchScript('baselines/express-server.js'),
    env: {},
    workers: 0,
  },
  {
    key: 'N',
    label: 'N bare NestJS 12',
    script: benchScript('baselines/nest-server.js'),
    env: {},
    workers: 0,
    scenarios: BASELINE_SCENARIOS,
  },
  {
    // N made as the server makes its requests (Express's prototypes in place, see
    // nest-chat.ts): the server's largest cut, given to N too.
    key: 'NP',
    label: 'NP NestJS 12, prototypes in place',
    script: benchScript('baselines/nest-prototyped-server.js'),
    env: {},
    workers: 0,
    scenarios: BASELINE_SCENARIOS,
  },
  {
    // N with X's production features by hand: what they cost a NestJS app.
    key: 'NX',
    label: 'NX NestJS 12 + production features',
    script: benchScript('baselines/nest-prod-server.js'),
    env: {},
    workers: 0,
    scenarios: BASELINE_SCENARIOS,
  },
  {
    key: 'X',
    label: 'X Express 5 + production features',
    script: benchScript('baselines/express-prod-server.js'),
    env: {},
    workers: 0,
    scenarios: BASELINE_SCENARIOS,
  },
  { key: 'B', label: 'B Nest WORKERS=0', script: SERVER_MAIN, env: {}, workers: 0 },
  { key: 'C', label: 'C Nest WORKERS=2', script: SERVER_MAIN, env: {}, workers: 2 },
  {
    // The default deployment counts too: C with the shared rate limiter (its counters in the
    // primary) on, at a limit the load never reaches.
    key: 'L',
    label: 'L Nest WORKERS=2 rate limit on (never reached)',
    script: SERVER_MAIN,
    env: { RATE_LIMIT_MAX: '1000000000', RATE_LIMIT_WINDOW_MS: '60000' },
    workers: 2,
    scenarios: BASELINE_SCENARIOS,
    httpOnly: true,
  },
  {
    key: 'D',
    label: 'D Nest WORKERS=2 STORE=redis',
    script: SERVER_MAIN,
    env: { STORE: 'redis', REDIS_URL: BENCH_REDIS_URL },
    workers: 2,
    // Each start gets its own empty key space, deleted once it has stopped.
    perStart: () => ({ REDIS_KEY_PREFIX: `bench:${RUN}:${starts++}:` }),
    afterStop: (env) => deleteKeys(BENCH_REDIS_URL, env.REDIS_KEY_PREFIX),
    storeCpuSeconds: () => redisCpuSeconds(BENCH_REDIS_URL),
  },
  onCluster('F', 'F Nest WORKERS=2 STORE=redis (Redis Cluster 3+3)', {}),
  {
    // Writes acknowledged only once a replica has them: what that costs, against F.
    ...onCluster('FW', 'FW Nest WORKERS=2 STORE=redis (Redis Cluster 3+3) REDIS_WAIT_REPLICAS=1', {
      REDIS_WAIT_REPLICAS: '1',
    }),
    scenarios: ['post', 'create'],
  },
];
