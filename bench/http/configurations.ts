import { Configuration } from '../lib/server';
import { benchScript, SERVER_MAIN } from '../lib/paths';
import { deleteKeys } from '../lib/redis';

/** D's Redis: REDIS_URL, or the usual local one. */
export const BENCH_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const RUN = Date.now().toString(36);
let starts = 0;

/**
 * What the HTTP scenarios compare, in the order they alternate within each round. Every
 * configuration gets HOST=127.0.0.1, a free PORT, LOG_LEVEL=silent (see lib/server.ts).
 * D needs a Redis server at BENCH_REDIS_URL.
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
  { key: 'B', label: 'B Nest WORKERS=0', script: SERVER_MAIN, env: {}, workers: 0 },
  { key: 'C', label: 'C Nest WORKERS=2', script: SERVER_MAIN, env: {}, workers: 2 },
  {
    key: 'D',
    label: 'D Nest WORKERS=2 STORE=redis',
    script: SERVER_MAIN,
    env: { STORE: 'redis', REDIS_URL: BENCH_REDIS_URL },
    workers: 2,
    // Each start gets its own empty key space, deleted once it has stopped.
    perStart: () => ({ REDIS_KEY_PREFIX: `bench:${RUN}:${starts++}:` }),
    afterStop: (env) => deleteKeys(BENCH_REDIS_URL, env.REDIS_KEY_PREFIX),
  },
];
