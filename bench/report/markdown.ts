import { HubResults } from '../hub/hub-suite';
import { Cell, HttpTiming } from '../http/http-suite';
import { Scenario } from '../http/scenarios';
import { Configuration } from '../lib/server';
import { Machine } from '../lib/machine';
import { ScaleResults } from '../scale/scale-suite';
import { baselinesMarkdown, BaselineResults, pairedMarkdown } from './baselines';
import { PairedRatio, PairTiming } from '../http/paired-suite';
import { clusterMarkdown, ClusterResults } from './cluster';
import { TargetResult } from './targets';

export interface ReportInput {
  mode: 'quick' | 'full';
  startedAt: Date;
  seconds: number;
  machine: Machine;
  timing: HttpTiming;
  configurations: Configuration[];
  scenarios: Scenario[];
  http: Cell[] | null;
  scale: ScaleResults | null;
  hub: HubResults | null;
  baselines: BaselineResults | null;
  paired: PairedRatio[] | null;
  pairTiming: PairTiming;
  cluster: ClusterResults | null;
  errors: string[];
  targets: TargetResult[];
}

const num = (value: number | null | undefined, digits = 0) =>
  value === null || value === undefined || !Number.isFinite(value)
    ? '–'
    : value.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });

const mib = (bytes: number) => num(bytes / 2 ** 20);

function table(header: string[], rows: string[][]): string[] {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ];
}

function httpSection(input: ReportInput, cells: Cell[]): string[] {
  const label = (key: string) => input.configurations.find((c) => c.key === key)?.label ?? key;
  const title = (key: string) => input.scenarios.find((s) => s.key === key)?.title ?? key;
  const rows = cells.map((cell) => [
    title(cell.scenario),
    label(cell.configuration),
    num(cell.median.requestsPerSecond),
    num(cell.median.p50),
    num(cell.median.p99),
    `${cell.median.errors} / ${cell.median.non2xx}`,
    num(cell.median.cpuMicrosPerRequest, 1),
    num(cell.median.primaryCpuMicrosPerRequest, 1),
    num(cell.median.redisCpuMicrosPerRequest, 1),
    mib(cell.median.peakRssBytes),
    cell.valid ? 'yes' : '**INVALID**',
  ]);
  const lines = [
    `### HTTP (median of ${input.timing.rounds} fresh start${input.timing.rounds > 1 ? 's' : ''} per cell)`,
    '',
    ...table(
      [
        'Scenario',
        'Configuration',
        'req/s',
        'p50 ms',
        'p99 ms',
        'errors / non-2xx',
        'server CPU µs/req (all processes)',
        'primary CPU µs/req',
        'Redis server CPU µs/req',
        'peak RSS MiB',
        'valid',
      ],
      rows,
    ),
  ];
  const invalid = cells.filter((cell) => !cell.valid);
  if (invalid.length > 0) {
    lines.push('', 'Invalid cells:');
    for (const cell of invalid) {
      lines.push(`- ${cell.scenario} / ${cell.configuration}: ${cell.invalidReasons.join('; ')}`);
    }
  }
  const fixedRate = cells.filter((cell) => cell.median.fixedRate);
  if (fixedRate.length > 0) {
    lines.push(
      '',
      `### Latency at a fixed rate: half of each configuration's measured maximum (autocannon overallRate, ${fixedRate.map((cell) => title(cell.scenario))[0]})`,
      '',
      ...table(
        ['Configuration', 'rate req/s', 'p50 ms', 'p99 ms'],
        fixedRate.map((cell) => [
          label(cell.configuration),
          num(cell.median.fixedRate?.rate),
          num(cell.median.fixedRate?.p50),
          num(cell.median.fixedRate?.p99),
        ]),
      ),
      '',
      'autocannon paces each connection per second: it sends its share of the rate back to back, then waits for the next second, so the load comes in bursts rather than evenly spaced.',
    );
  }
  return lines;
}

function scaleSection(scale: ScaleResults, mode: ReportInput['mode']): string[] {
  const { memory, eviction, sizes } = scale;
  const lines = [
    '### Scale checks (real InMemoryConversationRepository from dist/, one node process each)',
    '',
  ];
  if (mode === 'quick') {
    lines.push(
      `**Scaled down (--quick):** ${sizes.messages.toLocaleString('en')} messages instead of 1,000,000; eviction of ${sizes.expired.toLocaleString('en')} in stores of ${sizes.smallStore.toLocaleString('en')} and ${sizes.largeStore.toLocaleString('en')} instead of 100,000 in 200,000 and 2,000,000.`,
      '',
    );
  }
  lines.push(
    ...table(
      ['Check', 'Result'],
      [
        ...memory.runs.map((run) => [
          `memory per message, ${run.messages.toLocaleString('en')} × 100 chars in ${run.conversations.toLocaleString('en')} conversations (${run.idStyle === 'single' ? 'inputs as WORKERS=0 passes them' : 'inputs as the cluster primary gets them over IPC'})`,
          `${num(run.bytesPerMessage)} B/message, ${num(run.bytesBeyondText)} B beyond the text`,
        ]),
        [
          'text size assumed (measured)',
          `${memory.assumedTextBytes} B: 16 B SeqOneByteString header + 100 chars rounded up to 8 (measured ${num(memory.measuredTextBytes, 1)} B)`,
        ],
        ...[eviction.small, eviction.large].map((run) => [
          `eviction sweep: ${run.expired.toLocaleString('en')} expired in ${run.storeSize.toLocaleString('en')}`,
          `median ${num(run.medianSweepMs, 1)} ms (${run.sweepsMs.map((ms) => num(ms, 1)).join(', ')})`,
        ]),
        ['eviction: large / small', `${num(eviction.ratio, 2)}×`],
        ...[eviction.small, eviction.large].map((run) => [
          `event-loop delay during a sweep of ${run.storeSize.toLocaleString('en')} while serving GETs`,
          `max ${num(run.whileServing.maxDelayMs, 1)} ms, p99 ${num(run.whileServing.p99DelayMs, 1)} ms; longest gap between GET turns ${num(run.whileServing.longestGapBetweenGetTurnsMs, 1)} ms; ${run.whileServing.gets.toLocaleString('en')} GETs during a ${num(run.whileServing.sweepMs, 1)} ms sweep`,
        ]),
      ],
    ),
    '',
    'GETs during a sweep: a setImmediate loop calling repository.getConversation on 10 live ids per turn; delay from perf_hooks.monitorEventLoopDelay (1 ms resolution).',
  );
  return lines;
}

function hubSection(hub: HubResults): string[] {
  return [
    `### Hub micro-benchmark (real StoreHub + InMemoryConversationRepository in a primary, ${hub.workers} workers with IpcConversationRepository, ${hub.inFlightPerWorker} calls in flight per worker, ${hub.measureSeconds} s)`,
    '',
    ...table(
      [
        'Operation',
        'ops/s',
        'primary CPU µs/op',
        'primary CPU % of a core',
        'primary capacity at 100% (ops/s)',
        'mean batch',
      ],
      Object.values(hub.results).map((op) => [
        op.name,
        num(op.opsPerSecond),
        num(op.primaryCpuMicrosPerOp, 1),
        num(op.primaryCpuPercent),
        num(1e6 / op.primaryCpuMicrosPerOp),
        num(op.meanBatchSize, 1),
      ]),
    ),
  ];
}

export function renderMarkdown(input: ReportInput): string {
  const { machine, timing } = input;
  const lines = [
    `## Benchmarks (${input.mode}) — ${input.startedAt.toISOString()}`,
    '',
    `Machine: ${machine.cores} cores, ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.os}`,
    `Load: autocannon in the runner process on the same machine, ${timing.connections} connections, pipelining 1; warm-up ${timing.warmupSeconds} s, measure ${timing.measureSeconds} s, ${timing.rounds} round(s), configurations alternating ${input.configurations.map((c) => c.key).join(' ')} in each round, every one started fresh. Seeded over HTTP: 1,000 conversations (+ the histories a scenario reads). Latency resolution 1 ms. CPU from /proc/<pid>/stat (utime+stime, 10 ms ticks) over the server's process tree during the measured run.`,
    `Configurations: ${input.configurations.map((c) => c.label).join('; ')} (all LOG_LEVEL=silent, 127.0.0.1).`,
    '',
  ];
  if (input.mode === 'quick') {
    lines.push(
      '**Quick run:** one round, short warm-up and measurement, scaled-down scale checks: a smoke test whose numbers are indicative only (the servers are not fully warmed up). Judge targets on a full run.',
      '',
    );
  }
  if (input.http) {
    lines.push(...httpSection(input, input.http), '');
  }
  if (input.baselines) {
    const title = (key: string) => input.scenarios.find((s) => s.key === key)?.title ?? key;
    lines.push(...baselinesMarkdown(input.baselines, title), '');
  }
  if (input.paired && input.paired.length > 0) {
    const title = (key: string) => input.scenarios.find((s) => s.key === key)?.title ?? key;
    lines.push(...pairedMarkdown(input.paired, input.pairTiming, title), '');
  }
  if (input.cluster) {
    lines.push(...clusterMarkdown(input.cluster), '');
  }
  if (input.scale) {
    lines.push(...scaleSection(input.scale, input.mode), '');
  }
  if (input.hub) {
    lines.push(...hubSection(input.hub), '');
  }
  lines.push(
    "### Targets (from this run's medians)",
    '',
    ...table(
      ['Target', 'Value', 'Result'],
      input.targets.map((t) => [
        t.target,
        t.note ? `${t.value} — ${t.note}` : t.value,
        t.pass === null ? 'n/a' : t.pass ? 'PASS' : '**FAIL**',
      ]),
    ),
  );
  if (input.errors.length > 0) {
    lines.push('', '### Errors', '', ...input.errors.map((error) => `- ${error}`));
  }
  lines.push('', `Total time: ${num(input.seconds)} s`);
  return lines.join('\n');
}
