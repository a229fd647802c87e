import { Cell, MasterCommands } from '../http/http-suite';

/** One configuration against another in one scenario (medians). */
export interface Comparison {
  scenario: string;
  numerator: string;
  denominator: string;
  requestsPerSecond: [number, number];
  p50: [number, number];
  p99: [number, number];
  /** numerator / denominator of req/s. */
  ratio: number;
  /** Configurations whose cell is invalid (errors, non-2xx, a process gone). */
  invalid: string[];
}

/** Redis Cluster (issue 15): F against D, FW against F, and the masters' shares in F's mixed. */
export interface ClusterResults {
  fAgainstD: Comparison[];
  fwAgainstF: Comparison[];
  masterCommands: (MasterCommands & { scenario: string; configuration: string }) | null;
}

/** The busiest master does at most this many times the commands of the least busy. */
export const MAX_MASTER_IMBALANCE = 1.5;

export function compare(
  cells: Cell[],
  scenario: string,
  numerator: string,
  denominator: string,
): Comparison | null {
  const find = (key: string) =>
    cells.find((cell) => cell.scenario === scenario && cell.configuration === key);
  const top = find(numerator);
  const bottom = find(denominator);
  if (!top || !bottom) {
    return null;
  }
  const pair = (pick: (cell: Cell) => number): [number, number] => [pick(top), pick(bottom)];
  return {
    scenario,
    numerator,
    denominator,
    requestsPerSecond: pair((cell) => cell.median.requestsPerSecond),
    p50: pair((cell) => cell.median.p50),
    p99: pair((cell) => cell.median.p99),
    ratio: top.median.requestsPerSecond / bottom.median.requestsPerSecond,
    invalid: [top, bottom].filter((cell) => !cell.valid).map((cell) => cell.configuration),
  };
}

export function clusterResults(cells: Cell[] | null): ClusterResults | null {
  if (!cells || !cells.some((cell) => cell.configuration === 'F')) {
    return null;
  }
  const present = <T>(value: T | null): value is T => value !== null;
  const mixed = cells.find((cell) => cell.scenario === 'mixed' && cell.configuration === 'F');
  return {
    fAgainstD: ['post', 'create', 'get20', 'mixed']
      .map((scenario) => compare(cells, scenario, 'F', 'D'))
      .filter(present),
    fwAgainstF: ['post', 'create']
      .map((scenario) => compare(cells, scenario, 'FW', 'F'))
      .filter(present),
    masterCommands: mixed?.median.masterCommands
      ? { ...mixed.median.masterCommands, scenario: 'mixed', configuration: 'F' }
      : null,
  };
}

const int = (value: number) =>
  Number.isFinite(value) ? Math.round(value).toLocaleString('en') : '–';
const two = (value: number) => (Number.isFinite(value) ? value.toFixed(2) : '–');

function comparisonTable(rows: Comparison[], numerator: string, denominator: string): string[] {
  return [
    `| Scenario | ${denominator} req/s | ${numerator} req/s | ${numerator}/${denominator} | ${denominator} p50 ms | ${numerator} p50 ms | ${denominator} p99 ms | ${numerator} p99 ms |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (row) =>
        `| ${row.scenario}${row.invalid.length > 0 ? ` (**invalid: ${row.invalid.join(', ')}**)` : ''} | ${int(row.requestsPerSecond[1])} | ${int(row.requestsPerSecond[0])} | ${two(row.ratio)} | ${int(row.p50[1])} | ${int(row.p50[0])} | ${int(row.p99[1])} | ${int(row.p99[0])} |`,
    ),
  ];
}

export function clusterMarkdown(results: ClusterResults): string[] {
  const lines = [
    '### Redis Cluster (F: 3 masters + 3 replicas started by the bench, WORKERS=2)',
    '',
    'F against D (one Redis), medians. On this machine the six Redis processes share the cores with the server and the load generator: F/D is a figure, not a target.',
    '',
    ...comparisonTable(results.fAgainstD, 'F', 'D'),
  ];
  if (results.fwAgainstF.length > 0) {
    lines.push(
      '',
      'FW (REDIS_WAIT_REPLICAS=1: a write is acknowledged once a replica has it) against F.',
      '',
      ...comparisonTable(results.fwAgainstF, 'FW', 'F'),
    );
  }
  const shares = results.masterCommands;
  if (shares) {
    lines.push(
      '',
      `Commands per master in F's mixed scenario (INFO commandstats, every cmdstat_* calls, before and after each measured run, summed over the rounds): busiest / least busy ${two(shares.maxOverMin)}× (target ≤ ${MAX_MASTER_IMBALANCE}×: ${shares.maxOverMin <= MAX_MASTER_IMBALANCE ? 'PASS' : '**FAIL**'}).`,
      '',
      '| Master | commands | share |',
      '| --- | --- | --- |',
      ...shares.byMaster.map(
        (master) =>
          `| ${master.address} | ${int(master.calls)} | ${(master.share * 100).toFixed(1)}% |`,
      ),
    );
  }
  return lines;
}
