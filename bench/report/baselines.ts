import { Cell } from '../http/http-suite';
import { BASELINE_SCENARIOS } from '../http/scenarios';
import { compare, Comparison } from './cluster';
/** B, then what it is compared with: the leanest NestJS app, Express with the same features, bare Express. */
const SIDE_BY_SIDE = ['B', 'N', 'X', 'E'];

/** One configuration's medians in one scenario. */
export interface BaselineRow {
  scenario: string;
  configuration: string;
  requestsPerSecond: number;
  cpuMicrosPerRequest: number;
  p99: number;
  valid: boolean;
}

/** B, N, X and E side by side; B/N, B/X, B/E, and L/C (the rate limiter on, never reached). */
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
    '### Baselines (B against N, X and E; L against C)',
    '',
    "N: the leanest NestJS 11 app doing the same work (one controller, hand validation). X: bare Express 5 plus the production features by hand (helmet, request id, Cache-Control, prom-client metrics, customer token). E: bare Express 5. Medians; CPU over all the server's processes.",
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
