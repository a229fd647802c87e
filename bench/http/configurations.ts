import { Configuration } from '../lib/server';
import { benchScript, SERVER_MAIN } from '../lib/paths';

/**
 * What the HTTP scenarios compare, in the order they alternate within each round. Every
 * configuration gets HOST=127.0.0.1, a free PORT, LOG_LEVEL=silent (see lib/server.ts).
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
  // (D) goes here once the Redis store exists, and is then measured like the others:
  // {
  //   key: 'D',
  //   label: 'D Nest WORKERS=2 STORE=redis',
  //   script: SERVER_MAIN,
  //   env: { STORE: 'redis', REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
  //   workers: 2,
  // },
];
