import { Cell } from '../http/http-suite';
import { PairedRatio, PairTiming } from '../http/paired-suite';
import { BASELINE_SCENARIOS } from '../http/scenarios';
import { compare, Comparison } from './cluster';
/**
 * B, then what it is compared with: the leanest NestJS app, the same with the production
 * features by hand, Express with those features, bare Express.
 */
const SIDE_BY_SIDE = ['B', 'N', 'NP', 'NX', 'X', 'E'];

/** One configuration's medians in one scenario. */
export interface BaselineRow {
  scenario: string;
  configuration: string;
  requestsPerSecond: number;
  cpuMicrosPerRequest: number;
  p99: number;
  valid: boolean;
}

/** B, N, NP, NX, X and E side by side; B/N, B/NP, B/NX, B/X, B/E, and L/C (the rate limiter on, never reached). */
export interface BaselineResults {
  rows: BaselineRow[];
  ratios: Comparison[];
}

export function baselineResults(cells: Cell[] | null): BaselineResults | null {
  if (!cells) {
    return null;
  }
  const rows: BaselineRow[] = [];
  const ratios: Comparison[] = [];
  for (const scenario of BASELINE_SCENARIOS) {
    for (const configuration of SIDE_BY_SIDE) {
      const cell = cells.find((c) => c.scenario === scenario && c.configuration === configuration);
      if (cell) {
        rows.push({
          scenario,
          configuration,
          requestsPerSecond: cell.median.requestsPerSecond,
          cpuMicrosPerRequest: cell.median.cpuMicrosPerRequest,
          p99: cell.median.p99,
          valid: cell.valid,
        });
      }
    }
    for (const [numerator, denominator] of [
      ['B', 'N'],
      ['B', 'NP'],
      ['B', 'NX'],
      ['B', 'X'],
      ['B', 'E'],
      ['L', 'C'],
    ]) {
      const comparison = compare(cells, scenario, numerator, denominator);
      if (comparison) {
        ratios.push(comparison);
      }
    }
  }
  return rows.length > 0 || ratios.length > 0 ? { rows, ratios } : null;
}

const int = (value: number) =>
  Number.isFinite(value) ? Math.round(value).toLocaleString('en') : '–';
const one = (value: number) =>
  Number.isFinite(value)
    ? value.toLocaleString('en', { minimumFractionDigits: 1, maximumFractionDigits: 1 })
    : '–';

export function baselinesMarkdown(
  results: BaselineResults,
  title: (key: string) => string,
): string[] {
  const lines = [
    '### Baselines (B against N, NP, NX, X and E; L against C)',
    '',
    "N: the leanest NestJS 12 app doing the same work (one controller, hand validation). NP: N on a server that makes requests and responses with Express's prototypes, as the server does. NX: N plus the production features by hand (helmet, request id, Cache-Control, prom-client metrics, customer token). X: bare Express 5 plus the same features. E: bare Express 5. Medians; CPU over all the server's processes.",
    '',
    '| Scenario | Configuration | req/s | CPU µs/req | p99 ms |',
    '| --- | --- | --- | --- | --- |',
    ...results.rows.map(
      (row) =>
        `| ${title(row.scenario)} | ${row.configuration}${row.valid ? '' : ' (**invalid**)'} | ${int(row.requestsPerSecond)} | ${one(row.cpuMicrosPerRequest)} | ${int(row.p99)} |`,
    ),
  ];
  const pairs = [...new Set(results.ratios.map((r) => `${r.numerator}/${r.denominator}`))];
  const scenarios = [...new Set(results.ratios.map((r) => r.scenario))];
  if (pairs.length > 0) {
    const cell = (scenario: string, pair: string) => {
      const r = results.ratios.find(
        (x) => x.scenario === scenario && `${x.numerator}/${x.denominator}` === pair,
      );
      if (!r) {
        return '';
      }
      const invalid = r.invalid.length > 0 ? ` **invalid: ${r.invalid.join(', ')}**` : '';
      return `${r.ratio.toFixed(2)} (${int(r.requestsPerSecond[0])} / ${int(r.requestsPerSecond[1])})${invalid}`;
    };
    lines.push(
      '',
      'req/s ratios (numerator / denominator):',
      '',
      `| Scenario | ${pairs.join(' | ')} |`,
      `| --- | ${pairs.map(() => '---').join(' | ')} |`,
      ...scenarios.map(
        (scenario) =>
          `| ${title(scenario)} | ${pairs.map((pair) => cell(scenario, pair)).join(' | ')} |`,
      ),
    );
  }
  return lines;
}

/** The paired measurement of the ratio targets (see paired-suite.ts), as a table. */
export function pairedMarkdown(
  paired: PairedRatio[],
  timing: PairTiming,
  title: (key: string) => string,
): string[] {
  const lines = [
    '### Paired ratios (the ratio targets are judged on these; B/NX and B/NP are figures)',
    '',
    `Both servers up at once, seeded and warmed up; ${timing.slices} slices of ${timing.sliceSeconds} s each, alternating between them, summed. A drift of the machine's speed slows both alike. A pair of single-process servers is pinned: both on one core, the load generator on the other.`,
    '',
    '| Scenario | Pair | pinned | req/s | ratio | slice ratios (min–max) | CPU µs/req | CPU ratio |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const pair of paired) {
    const { numerator: top, denominator: bottom } = pair;
    lines.push(
      `| ${title(pair.scenario)} | ${top.configuration}/${bottom.configuration} | ${pair.pinned ? 'yes' : 'no'} | ${int(top.requestsPerSecond)} / ${int(bottom.requestsPerSecond)} | ${pair.ratio.toFixed(3)}${pair.invalid ? ` (invalid: ${pair.invalid})` : ''} | ${Math.min(...pair.sliceRatios).toFixed(2)}–${Math.max(...pair.sliceRatios).toFixed(2)} | ${top.cpuMicrosPerRequest.toFixed(0)} / ${bottom.cpuMicrosPerRequest.toFixed(0)} | ${pair.cpuRatio.toFixed(3)} |`,
    );
  }
  return lines;
}
