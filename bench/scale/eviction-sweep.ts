import { randomUUID } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { loadInMemoryRepository, Repository } from '../lib/server-modules';
import { median } from '../lib/stats';
import { fail, flat, report, settledHeapUsed } from './heap';

/**
 * One eviction sweep of the real InMemoryConversationRepository (from dist/):
 *   node --expose-gc eviction-sweep.js <storeSize> <expired> <repetitions>
 * The store holds `expired` conversations whose last activity is older than the cutoff
 * (created first, so oldest in activity order) and `storeSize - expired` live ones.
 *
 * Ids are flat strings, as the cluster primary gets them over IPC.
 *
 * Timing: a small sweep first so that the code is compiled as in a long-running server,
 * then `repetitions` sweeps, each in a freshly built store, with nothing else running.
 * Event-loop delay: one more sweep while "GETs" are served: a setImmediate loop calling
 * repository.getConversation on 10 live ids per turn, with perf_hooks.monitorEventLoopDelay
 * (1 ms resolution) enabled; the longest gap between two turns of that loop is reported too.
 */

const OLD = 1_000_000;
const LIVE = 2_000_000_000_000;
const GETS_PER_TURN = 10;

async function build(storeSize: number, expired: number) {
  const Repository = await loadInMemoryRepository();
  const repository = new Repository();
  const live: string[] = [];
  for (let i = 0; i < storeSize; i++) {
    const old = i < expired;
    const { id } = await repository.createConversation({
      id: flat(randomUUID()),
      now: old ? OLD + i : LIVE,
      maxConversations: Number.MAX_SAFE_INTEGER,
    });
    if (!old && live.length < 1_000) {
      live.push(id);
    }
  }
  return { repository, live, cutoff: OLD + expired };
}

async function timedSweep(repository: Repository, cutoff: number, expired: number) {
  const started = performance.now();
  const evicted = await repository.evictInactive(cutoff);
  const ms = performance.now() - started;
  if (evicted !== expired) {
    throw new Error(`evicted ${evicted}, expected ${expired}`);
  }
  return ms;
}

async function sweepWhileServing(
  repository: Repository,
  live: string[],
  cutoff: number,
  expired: number,
) {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  let serving = true;
  let gets = 0;
  let lastTurn = performance.now();
  let longestGap = 0;
  const serve = () => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - lastTurn);
    lastTurn = now;
    for (let i = 0; i < GETS_PER_TURN; i++) {
      void repository.getConversation(live[gets++ % live.length]);
    }
    if (serving) {
      setImmediate(serve);
    }
  };
  histogram.enable();
  setImmediate(serve);
  await new Promise((resolve) => setTimeout(resolve, 20));
  const ms = await timedSweep(repository, cutoff, expired);
  serving = false;
  histogram.disable();
  return {
    sweepMs: ms,
    maxDelayMs: histogram.max / 1e6,
    p99DelayMs: histogram.percentile(99) / 1e6,
    longestGapBetweenGetTurnsMs: longestGap,
    gets,
  };
}

async function main() {
  const [storeSize, expired, repetitions] = process.argv.slice(2).map(Number);
  const warmup = await build(20_000, 10_000);
  await timedSweep(warmup.repository, warmup.cutoff, 10_000);
  const sweepsMs: number[] = [];
  let buildSeconds = 0;
  for (let i = 0; i < repetitions; i++) {
    const started = performance.now();
    const { repository, cutoff } = await build(storeSize, expired);
    buildSeconds = (performance.now() - started) / 1000;
    settledHeapUsed(2);
    sweepsMs.push(await timedSweep(repository, cutoff, expired));
  }
  const { repository, live, cutoff } = await build(storeSize, expired);
  settledHeapUsed(2);
  const serving = await sweepWhileServing(repository, live, cutoff, expired);
  report({
    storeSize,
    expired,
    sweepsMs,
    medianSweepMs: median(sweepsMs),
    buildSeconds,
    whileServing: serving,
  });
}

main().catch(fail);
