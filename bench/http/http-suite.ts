import { performance } from 'node:perf_hooks';
import { LoadResult, runLoad } from '../lib/load';
import { cpuBetween, cpuSnapshot, startRssSampler } from '../lib/proc-stats';
import { Configuration, RunningServer, startServer } from '../lib/server';
import { median } from '../lib/stats';
import { Scenario, seed } from './scenarios';

export interface HttpTiming {
  warmupSeconds: number;
  measureSeconds: number;
  rounds: number;
  connections: number;
}

/** One fresh start of one configuration for one scenario. */
export interface Measurement {
  round: number;
  error?: string;
  load?: LoadResult;
  /** The same requests at half of `load`'s rate (scenarios with fixedRate). */
  fixedRate?: LoadResult & { rate: number };
  /** Server CPU (user + system) over all its processes during the measured run. */
  cpuSeconds?: number;
  cpuMicrosPerRequest?: number;
  /** Cluster primary alone (configurations with workers). */
  primaryCpuMicrosPerRequest?: number;
  /**
   * The Redis servers' own CPU (STORE=redis), which the server's processes do not include:
   * D's one Redis, all six nodes of F's cluster.
   */
  redisCpuMicrosPerRequest?: number;
  /** Commands each Redis Cluster master ran during the measured run, by address. */
  masterCommands?: Record<string, number>;
  /** The load generator (this process), as a share of one core, during the measured run. */
  loadGeneratorCpuPercent?: number;
  /** Highest summed RSS of the server's processes, sampled every 100 ms from start to stop. */
  peakRssBytes?: number;
  processes?: number;
  /** Why the measurement does not count: errors, non-2xx, a process that went away. */
  invalid?: string;
  /** Wall-clock seconds of each phase. */
  phases?: Record<string, number>;
}

export interface CellSummary {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  cpuMicrosPerRequest: number;
  primaryCpuMicrosPerRequest: number | null;
  redisCpuMicrosPerRequest: number | null;
  peakRssBytes: number;
  fixedRate: { rate: number; p50: number; p99: number } | null;
  /** Redis Cluster: each master's commands summed over the rounds, and its share of them. */
  masterCommands: MasterCommands | null;
}

export interface MasterCommands {
  byMaster: { address: string; calls: number; share: number }[];
  /** Busiest master's commands over the least busy's. */
  maxOverMin: number;
}

export interface Cell {
  scenario: string;
  configuration: string;
  measurements: Measurement[];
  /** Medians over the rounds (errors and non-2xx are sums). */
  median: CellSummary;
  valid: boolean;
  invalidReasons: string[];
}

function problems(load: LoadResult, what: string): string[] {
  const found: string[] = [];
  if (load.errors > 0) {
    found.push(`${what}: ${load.errors} errors (${load.timeouts} timeouts)`);
  }
  if (load.non2xx > 0) {
    found.push(`${what}: ${load.non2xx} non-2xx ${JSON.stringify(load.statusCodes)}`);
  }
  return found;
}

/** Seeds, warms up and measures a started server. */
async function measureRunning(
  server: RunningServer,
  scenario: Scenario,
  timing: HttpTiming,
  round: number,
  phases: Record<string, number>,
): Promise<Measurement> {
  let lap = performance.now();
  const phase = (name: string) => {
    const now = performance.now();
    phases[name] = Number(((now - lap) / 1000).toFixed(3));
    lap = now;
  };
  const seeded = await seed(server.baseUrl, scenario.seed);
  phase('seed');
  const load = (overallRate?: number, duration = timing.measureSeconds) =>
    runLoad({
      url: server.baseUrl,
      requests: scenario.requests(seeded),
      duration,
      connections: timing.connections,
      overallRate,
    });
  await load(undefined, timing.warmupSeconds);
  phase('warmup');

  const { storeCpuSeconds, masterCommandCalls } = server.configuration;
  const redisBefore = (await storeCpuSeconds?.()) ?? 0;
  const commandsBefore = await masterCommandCalls?.();
  const pids = server.pids();
  const before = cpuSnapshot(pids);
  const ownBefore = process.cpuUsage();
  const started = performance.now();
  const result = await load();
  const own = process.cpuUsage(ownBefore);
  const elapsed = (performance.now() - started) / 1000;
  const pidsAfter = server.pids();
  const after = cpuSnapshot(pidsAfter);
  const redisAfter = (await storeCpuSeconds?.()) ?? 0;
  const commandsAfter = await masterCommandCalls?.();
  phase('measure');

  const cpuSeconds = cpuBetween(before, after);
  const perRequest = (seconds: number) => (seconds * 1e6) / Math.max(result.requests, 1);
  const measurement: Measurement = {
    round,
    load: result,
    cpuSeconds,
    cpuMicrosPerRequest: perRequest(cpuSeconds),
    loadGeneratorCpuPercent: ((own.user + own.system) / 1e6 / elapsed) * 100,
    processes: pids.length,
  };
  if (server.configuration.workers > 0) {
    measurement.primaryCpuMicrosPerRequest = perRequest(cpuBetween(before, after, [server.pid]));
  }
  if (storeCpuSeconds) {
    measurement.redisCpuMicrosPerRequest = perRequest(redisAfter - redisBefore);
  }
  if (commandsBefore && commandsAfter) {
    measurement.masterCommands = Object.fromEntries(
      Object.entries(commandsAfter).map(([address, calls]) => [
        address,
        calls - (commandsBefore[address] ?? 0),
      ]),
    );
  }
  const invalid = problems(result, 'max');
  if (pidsAfter.length !== pids.length || pids.some((pid) => !pidsAfter.includes(pid))) {
    invalid.push(
      `server processes changed during the run (${pids.join(',')} → ${pidsAfter.join(',')})`,
    );
  }
  if (scenario.fixedRate) {
    const rate = Math.max(1, Math.floor(result.requestsPerSecond / 2));
    measurement.fixedRate = { ...(await load(rate)), rate };
    phase('fixedRate');
    invalid.push(...problems(measurement.fixedRate, 'fixed rate'));
  }
  if (invalid.length > 0) {
    measurement.invalid = invalid.join('; ');
  }
  return measurement;
}

/** Starts the configuration fresh, measures it once, stops it. */
async function measureOnce(
  configuration: Configuration,
  scenario: Scenario,
  timing: HttpTiming,
  round: number,
): Promise<Measurement> {
  const phases: Record<string, number> = {};
  const since = (start: number) => Number(((performance.now() - start) / 1000).toFixed(3));
  const starting = performance.now();
  let server: RunningServer;
  try {
    server = await startServer(configuration);
  } catch (error) {
    return { round, error: String(error), invalid: 'did not start' };
  }
  phases.start = since(starting);
  const rss = startRssSampler(server.pid);
  let measurement: Measurement;
  try {
    measurement = await measureRunning(server, scenario, timing, round, phases);
    measurement.peakRssBytes = rss.stop();
  } catch (error) {
    rss.stop();
    measurement = { round, error: String(error), invalid: 'failed during the measurement' };
  } finally {
    const stopping = performance.now();
    await server.stop();
    phases.stop = since(stopping);
  }
  return { ...measurement, phases };
}

const medianOf = (measurements: Measurement[], pick: (m: Measurement) => number | undefined) =>
  median(measurements.map(pick).filter((value): value is number => value !== undefined));

function masterCommandsOf(measurements: Measurement[]): MasterCommands | null {
  const totals = new Map<string, number>();
  for (const { masterCommands } of measurements) {
    for (const [address, calls] of Object.entries(masterCommands ?? {})) {
      totals.set(address, (totals.get(address) ?? 0) + calls);
    }
  }
  if (totals.size === 0) {
    return null;
  }
  const all = [...totals.values()].reduce((sum, calls) => sum + calls, 0);
  const byMaster = [...totals]
    .map(([address, calls]) => ({ address, calls, share: calls / Math.max(all, 1) }))
    .sort((a, b) => b.calls - a.calls);
  return {
    byMaster,
    maxOverMin: byMaster[0].calls / byMaster[byMaster.length - 1].calls,
  };
}

function summarize(measurements: Measurement[]): CellSummary {
  const sum = (pick: (load: LoadResult) => number) =>
    measurements.reduce(
      (total, m) => total + (m.load ? pick(m.load) : 0) + (m.fixedRate ? pick(m.fixedRate) : 0),
      0,
    );
  const primary = medianOf(measurements, (m) => m.primaryCpuMicrosPerRequest);
  const redis = medianOf(measurements, (m) => m.redisCpuMicrosPerRequest);
  const withFixedRate = measurements.filter((m) => m.fixedRate);
  return {
    requestsPerSecond: medianOf(measurements, (m) => m.load?.requestsPerSecond),
    p50: medianOf(measurements, (m) => m.load?.p50),
    p99: medianOf(measurements, (m) => m.load?.p99),
    errors: sum((load) => load.errors),
    non2xx: sum((load) => load.non2xx),
    cpuMicrosPerRequest: medianOf(measurements, (m) => m.cpuMicrosPerRequest),
    primaryCpuMicrosPerRequest: Number.isNaN(primary) ? null : primary,
    redisCpuMicrosPerRequest: Number.isNaN(redis) ? null : redis,
    peakRssBytes: medianOf(measurements, (m) => m.peakRssBytes),
    fixedRate:
      withFixedRate.length === 0
        ? null
        : {
            rate: medianOf(withFixedRate, (m) => m.fixedRate?.rate),
            p50: medianOf(withFixedRate, (m) => m.fixedRate?.p50),
            p99: medianOf(withFixedRate, (m) => m.fixedRate?.p99),
          },
    masterCommands: masterCommandsOf(measurements),
  };
}

function describe(measurement: Measurement): string {
  const { load } = measurement;
  if (!load) {
    return `FAILED ${measurement.invalid}: ${measurement.error ?? ''}`.trim();
  }
  const parts = [
    `${Math.round(load.requestsPerSecond)} req/s`,
    `p50 ${load.p50} ms`,
    `p99 ${load.p99} ms`,
    `${Math.round(measurement.cpuMicrosPerRequest ?? 0)} µs CPU/req`,
  ];
  if (measurement.primaryCpuMicrosPerRequest !== undefined) {
    parts.push(`primary ${Math.round(measurement.primaryCpuMicrosPerRequest)} µs/req`);
  }
  if (measurement.redisCpuMicrosPerRequest !== undefined) {
    parts.push(`Redis server ${Math.round(measurement.redisCpuMicrosPerRequest)} µs/req`);
  }
  if (measurement.masterCommands) {
    parts.push(
      `commands per master ${Object.values(measurement.masterCommands)
        .map((calls) => calls.toLocaleString('en'))
        .join(' / ')}`,
    );
  }
  if (measurement.fixedRate) {
    const fixed = measurement.fixedRate;
    parts.push(`@${fixed.rate}/s p50 ${fixed.p50} ms p99 ${fixed.p99} ms`);
  }
  if (measurement.invalid) {
    parts.push(`INVALID: ${measurement.invalid}`);
  }
  return parts.join(', ');
}

/**
 * For each scenario, rounds of every configuration in turn (A E B C A E B C ...), each
 * started fresh, seeded, warmed up, measured and stopped.
 */
export async function runHttpSuite(
  configurations: Configuration[],
  scenarios: Scenario[],
  timing: HttpTiming,
  log: (line: string) => void,
): Promise<Cell[]> {
  const cells: Cell[] = [];
  for (const scenario of scenarios) {
    const here = configurations.filter((c) => !c.scenarios || c.scenarios.includes(scenario.key));
    const measurements = new Map<string, Measurement[]>(
      here.map((configuration) => [configuration.key, []]),
    );
    for (let round = 1; round <= timing.rounds; round++) {
      for (const configuration of here) {
        const measurement = await measureOnce(configuration, scenario, timing, round);
        measurements.get(configuration.key)?.push(measurement);
        log(
          `[${scenario.key}] ${configuration.label} round ${round}/${timing.rounds}: ${describe(measurement)}`,
        );
      }
    }
    for (const configuration of here) {
      const list = measurements.get(configuration.key) ?? [];
      const invalidReasons = list
        .filter((m) => m.invalid)
        .map(
          (m) => `round ${m.round}: ${m.invalid}${m.error ? ` (${m.error.split('\n')[0]})` : ''}`,
        );
      cells.push({
        scenario: scenario.key,
        configuration: configuration.key,
        measurements: list,
        median: summarize(list),
        valid: invalidReasons.length === 0 && list.length > 0,
        invalidReasons,
      });
    }
  }
  return cells;
}
