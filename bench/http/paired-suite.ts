import { performance } from 'node:perf_hooks';
import { CpuPinning, pinLoadGenerator } from '../lib/cpu-pinning';
import { runLoad } from '../lib/load';
import { cpuBetween, cpuSnapshot } from '../lib/proc-stats';
import { Configuration, RunningServer, startServer } from '../lib/server';
import { Scenario, seed, Seeded } from './scenarios';

/**
 * The ratio targets of issue 19, measured in pairs: [scenario, numerator, denominator], and
 * B/NX and B/NP beside them as figures.
 * This VM's speed drifts by ±20% over minutes, so two cells measured a minute apart can
 * differ by more than the targets' margins. A pair is measured with both servers up at
 * once, in short slices that alternate between them: a drift slows both alike.
 */
export const PAIRS: [string, string, string][] = [
  ['post', 'B', 'N'],
  ['create', 'B', 'N'],
  ['get20', 'B', 'N'],
  // Not a target: B against a NestJS app with the same production features by hand, which
  // isolates what those features cost from the rest of the server's structure.
  ['get20', 'B', 'NX'],
  // Nor these: B against N made as the server makes its requests (NP), what the rest of the
  // server costs once N has the same cut.
  ['post', 'B', 'NP'],
  ['get20', 'B', 'NP'],
  ['post', 'L', 'C'],
];

export interface PairTiming {
  warmupSeconds: number;
  /** Slices per server; they alternate N D D N N D ... (each starts the round it ends). */
  slices: number;
  sliceSeconds: number;
  connections: number;
}

/** What one server of a pair did over all its slices. */
export interface PairSide {
  configuration: string;
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  cpuMicrosPerRequest: number;
  /** Requests not answered 2xx, errors and timeouts, over all slices. */
  failed: number;
}

export interface PairedRatio {
  scenario: string;
  numerator: PairSide;
  denominator: PairSide;
  /** numerator / denominator of req/s, over all slices. */
  ratio: number;
  /** denominator / numerator of CPU µs per request: the same comparison by work done. */
  cpuRatio: number;
  /** The req/s ratio slice pair by slice pair: how steady it was. */
  sliceRatios: number[];
  /** Whether both servers ran on one core and the load on the other (pinningFor). */
  pinned: boolean;
  /** Why the pair is not to be judged by (a failed request, a server gone), if so. */
  invalid?: string;
}

interface Running {
  server: RunningServer;
  seeded: Seeded;
  side: PairSide;
  /** CPU seconds of the server's processes over its slices so far. */
  cpuSeconds: number;
}

async function measureSlice(running: Running, scenario: Scenario, timing: PairTiming) {
  const pids = running.server.pids();
  const before = cpuSnapshot(pids);
  const started = performance.now();
  const load = await runLoad({
    url: running.server.baseUrl,
    requests: scenario.requests(running.seeded),
    duration: timing.sliceSeconds,
    connections: timing.connections,
  });
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuBetween(before, cpuSnapshot(running.server.pids()));
  const { side } = running;
  side.requests += load.requests;
  side.seconds += seconds;
  side.failed += load.errors + load.timeouts + load.non2xx;
  running.cpuSeconds += cpu;
  return load.requests / seconds;
}

/**
 * A pair of single-process servers runs pinned: both on one core, the load generator on the
 * other (see cpu-pinning.ts), so that what one slice measures is the server's own cost, not
 * how the scheduler shared two cores out. A pair with cluster workers runs unpinned: its
 * processes are meant to share both cores.
 */
function pinningFor(numerator: Configuration, denominator: Configuration): CpuPinning | null {
  return numerator.workers === 0 && denominator.workers === 0 ? pinLoadGenerator() : null;
}

async function measurePair(
  scenario: Scenario,
  numerator: Configuration,
  denominator: Configuration,
  timing: PairTiming,
): Promise<PairedRatio> {
  const started: Running[] = [];
  const pinning = pinningFor(numerator, denominator);
  try {
    for (const configuration of [numerator, denominator]) {
      const server = await startServer(configuration, undefined, pinning ?? undefined);
      const side: PairSide = {
        configuration: configuration.key,
        requests: 0,
        seconds: 0,
        requestsPerSecond: 0,
        cpuMicrosPerRequest: 0,
        failed: 0,
      };
      started.push({
        server,
        seeded: await seed(server.baseUrl, scenario.seed),
        side,
        cpuSeconds: 0,
      });
    }
    for (const running of started) {
      await runLoad({
        url: running.server.baseUrl,
        requests: scenario.requests(running.seeded),
        duration: timing.warmupSeconds,
        connections: timing.connections,
      });
    }
    const [top, bottom] = started;
    const sliceRatios: number[] = [];
    for (let slice = 0; slice < timing.slices; slice++) {
      // N D, then D N: neither always goes first.
      if (slice % 2 === 0) {
        const rate = await measureSlice(top, scenario, timing);
        sliceRatios.push(rate / (await measureSlice(bottom, scenario, timing)));
      } else {
        const rate = await measureSlice(bottom, scenario, timing);
        sliceRatios.push((await measureSlice(top, scenario, timing)) / rate);
      }
    }
    const invalid: string[] = [];
    for (const { server, side, cpuSeconds } of started) {
      side.requestsPerSecond = side.requests / side.seconds;
      side.cpuMicrosPerRequest = (cpuSeconds * 1e6) / Math.max(side.requests, 1);
      if (side.failed > 0) {
        invalid.push(`${side.configuration}: ${side.failed} requests failed`);
      }
      if (server.pids().length === 0) {
        invalid.push(`${side.configuration}: the server is gone`);
      }
    }
    return {
      scenario: scenario.key,
      numerator: top.side,
      denominator: bottom.side,
      ratio: top.side.requestsPerSecond / bottom.side.requestsPerSecond,
      cpuRatio: bottom.side.cpuMicrosPerRequest / top.side.cpuMicrosPerRequest,
      sliceRatios,
      pinned: pinning !== null,
      ...(invalid.length > 0 ? { invalid: invalid.join('; ') } : {}),
    };
  } finally {
    pinning?.release();
    for (const { server } of started) {
      await server.stop();
    }
  }
}

/** Every pair whose scenario and both configurations are selected, one after another. */
export async function runPairedSuite(
  configurations: Configuration[],
  scenarios: Scenario[],
  timing: PairTiming,
  log: (line: string) => void,
): Promise<PairedRatio[]> {
  const results: PairedRatio[] = [];
  for (const [scenarioKey, numeratorKey, denominatorKey] of PAIRS) {
    const scenario = scenarios.find((s) => s.key === scenarioKey);
    const numerator = configurations.find((c) => c.key === numeratorKey);
    const denominator = configurations.find((c) => c.key === denominatorKey);
    if (!scenario || !numerator || !denominator) {
      continue;
    }
    const result = await measurePair(scenario, numerator, denominator, timing);
    const [low, high] = [Math.min(...result.sliceRatios), Math.max(...result.sliceRatios)];
    log(
      `[paired ${scenarioKey}] ${numeratorKey}/${denominatorKey}: ${result.ratio.toFixed(3)} req/s ` +
        `(${Math.round(result.numerator.requestsPerSecond)} / ${Math.round(result.denominator.requestsPerSecond)}; ` +
        `slices ${low.toFixed(2)}–${high.toFixed(2)}), CPU µs/req ${result.numerator.cpuMicrosPerRequest.toFixed(0)} / ` +
        `${result.denominator.cpuMicrosPerRequest.toFixed(0)}${result.pinned ? ', pinned' : ''}${result.invalid ? `; INVALID: ${result.invalid}` : ''}`,
    );
    results.push(result);
  }
  return results;
}
