import { performance } from 'node:perf_hooks';
import { cpuBetween, cpuSnapshot } from '../lib/proc-stats';
import { Configuration, RunningServer, startServer } from '../lib/server';
import { SERVER_MAIN } from '../lib/paths';
import { median, percentile } from '../lib/stats';
import { AGENTS, agentId, JsonClient, MIX, seedInbox, SeededInbox, TEAMS } from './list-seed';

/**
 * Issue 32's cost of the inbox list: the latency of one page of `GET /api/conversations` in a
 * store of 10,000 conversations and in one of 100,000, for each query an agent tool sends
 * most. One client sends the pages one after another over one keep-alive connection, so each
 * latency is the server's alone, not a queue's. The targets (in memory): each query's
 * latency at 100,000 at most 1.5× its latency at 10,000 (p50 against p50), and p99 under
 * 20 ms at both sizes.
 *
 * Every size is a fresh start of the configuration, seeded over the API (list-seed.ts). A
 * configuration whose store answers the list with 503 store_unavailable (the Redis store
 * until its inbox exists) is skipped, with that reason in the report.
 */

export interface ListSettings {
  /** The two store sizes, smaller first: the ratio is the larger's over the smaller's. */
  sizes: [number, number];
  /** Measured pages per query and size. */
  pages: number;
  /**
   * Unmeasured pages per query and size: first every query's on both sizes, once both are
   * seeded, then again just before the query is measured. One size waits idle while the
   * other is seeded, and V8 cools what it does not run: when the smaller was seeded first
   * and waited minutes, with 100 pages before each query only, its first queries took twice
   * the CPU per page of the larger's. So the larger is seeded first, and waits only while
   * the smaller is.
   */
  warmupPages: number;
  /** The measured pages of each size in this many slices, alternating between the sizes. */
  slices: number;
}

export const FULL_LIST: ListSettings = {
  sizes: [10_000, 100_000],
  pages: 1_000,
  warmupPages: 300,
  slices: 20,
};
export const QUICK_LIST: ListSettings = {
  sizes: [1_000, 10_000],
  pages: 200,
  warmupPages: 20,
  slices: 4,
};

/** The targets, in memory. */
export const MAX_LIST_RATIO = 1.5;
export const MAX_LIST_P99_MS = 20;

export interface ListQuery {
  key: string;
  /** The query string, as an agent tool sends it. */
  title: string;
}

export const LIST_QUERIES: ListQuery[] = [
  { key: 'first', title: 'first page, no filter' },
  { key: 'queue', title: 'status=open&assignee=none&sort=waitingSince' },
  { key: 'mine', title: 'assignee=<id> (50 agents in turn)' },
  { key: 'unread', title: 'unread=agent' },
  {
    key: 'walk',
    title: 'cursor walk, no filter (nextCursor followed; from the top again at the end)',
  },
];

export interface ListQueryResult {
  query: string;
  pages: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** Conversations per page, on average. */
  meanRows: number;
  /** CPU of the server's processes (all of them) per measured page, µs. */
  cpuMicrosPerPage: number;
  /** The cursor walk: how many times it reached the end among the measured pages. */
  walkEnds?: number;
}

export interface ListSizeResult {
  conversations: number;
  seed: SeededInbox;
  queries: ListQueryResult[];
}

export interface ListRatio {
  query: string;
  p50Ratio: number;
  p99Ratio: number;
  /** CPU per page, larger over smaller: what the VM's drift hardly moves. */
  cpuRatio: number;
}

export interface ListConfigurationResult {
  configuration: string;
  label: string;
  /** The store is in memory: the targets apply. */
  inMemory: boolean;
  /** Why it was not measured (the Redis inbox not built yet). */
  skipped?: string;
  sizes: ListSizeResult[];
  ratios: ListRatio[];
}

export interface ListResults {
  settings: ListSettings;
  mix: typeof MIX;
  configurations: ListConfigurationResult[];
}

/** The configurations the list runs in: the server itself, each store. */
export const listConfigurations = (configurations: Configuration[]): Configuration[] =>
  configurations.filter(
    (c) => c.script === SERVER_MAIN && (!c.scenarios || c.scenarios.includes('list')),
  );

const pathOf = (query: string, n: number, cursor: string | null): string => {
  switch (query) {
    case 'first':
      return '/api/conversations';
    case 'queue':
      return '/api/conversations?status=open&assignee=none&sort=waitingSince';
    case 'mine':
      return `/api/conversations?assignee=${agentId(n)}`;
    case 'unread':
      return '/api/conversations?unread=agent';
    default:
      return cursor ? `/api/conversations?cursor=${cursor}` : '/api/conversations';
  }
};

interface Page {
  conversations: unknown[];
  nextCursor: string | null;
}

/**
 * One query's pages on one server, sent one at a time and each timed from sending to the
 * last byte; the cursor walk keeps its place from one slice to the next.
 */
class QueryRun {
  readonly latencies: number[] = [];
  rows = 0;
  cpuSeconds = 0;
  private cursor: string | null = null;
  private sent = 0;
  private walkEnds = 0;

  constructor(
    private readonly server: RunningServer,
    private readonly client: JsonClient,
    private readonly query: string,
  ) {}

  /** Sends `pages` pages; measured ones count their latency, rows and the server's CPU. */
  async pages(pages: number, measured: boolean): Promise<void> {
    const pids = this.server.pids();
    const before = cpuSnapshot(pids);
    for (let n = 0; n < pages; n++) {
      const path = pathOf(this.query, this.sent++, this.cursor);
      const started = performance.now();
      const { status, text } = await this.client.send({ method: 'GET', path });
      const ms = performance.now() - started;
      if (status !== 200) {
        throw new Error(`GET ${path}: ${status} ${text.slice(0, 300)}`);
      }
      const page = JSON.parse(text) as Page;
      if (this.query === 'walk') {
        this.cursor = page.nextCursor;
        if (this.cursor === null && measured) {
          this.walkEnds++;
        }
      }
      if (measured) {
        this.latencies.push(ms);
        this.rows += page.conversations.length;
      }
    }
    if (measured) {
      this.cpuSeconds += cpuBetween(before, cpuSnapshot(pids));
    }
  }

  result(): ListQueryResult {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const pages = sorted.length;
    return {
      query: this.query,
      pages,
      p50Ms: median(sorted),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted[pages - 1],
      meanMs: sorted.reduce((sum, ms) => sum + ms, 0) / pages,
      meanRows: this.rows / pages,
      cpuMicrosPerPage: (this.cpuSeconds * 1e6) / pages,
      ...(this.query === 'walk' ? { walkEnds: this.walkEnds } : {}),
    };
  }
}

/**
 * Whether the store lists at all: the Redis store answers 503 store_unavailable until its
 * inbox is built. Returns the reason to skip, or null.
 */
async function refusal(client: JsonClient): Promise<string | null> {
  const { status, text } = await client.send({ method: 'GET', path: '/api/conversations?limit=1' });
  if (status === 200) {
    return null;
  }
  let code = '';
  try {
    code = String((JSON.parse(text) as { code?: unknown }).code ?? '');
  } catch {
    // not a problem document
  }
  if (status === 503 && code === 'store_unavailable') {
    return 'skipped: its store answers GET /api/conversations with 503 store_unavailable (the inbox is not built on this store yet)';
  }
  throw new Error(`GET /api/conversations?limit=1: ${status} ${text.slice(0, 300)}`);
}

interface Sized {
  size: number;
  server: RunningServer;
  client: JsonClient;
  seed?: SeededInbox;
}

/**
 * Both sizes of a configuration are up at once, and each query's pages alternate between
 * them in slices (small large, large small, ...), as in http/paired-suite.ts: this VM's
 * speed drifts within minutes, and a drift then slows both sizes alike.
 */
async function measureConfiguration(
  configuration: Configuration,
  settings: ListSettings,
  log: (line: string) => void,
): Promise<ListConfigurationResult> {
  const result: ListConfigurationResult = {
    configuration: configuration.key,
    label: configuration.label,
    inMemory: configuration.env.STORE !== 'redis',
    sizes: [],
    ratios: [],
  };
  const sized: Sized[] = [];
  try {
    // The larger first: whichever waits idle while the other is seeded has cooled (see
    // warmupPages), and that should weigh against the ratio, not for it.
    for (const size of [...settings.sizes].reverse()) {
      log(`list: ${configuration.label}, ${size.toLocaleString('en')} conversations`);
      const server = await startServer(configuration);
      const one: Sized = { size, server, client: new JsonClient(server.baseUrl, 1) };
      sized.unshift(one);
      const skipped = await refusal(one.client);
      if (skipped) {
        log(`list: ${configuration.label} ${skipped}`);
        return { ...result, skipped };
      }
      one.seed = await seedInbox(server.baseUrl, size, log);
      log(
        `  seeded in ${one.seed.seconds.toFixed(0)} s (${one.seed.requests.toLocaleString('en')} requests); counts ${JSON.stringify(one.seed.counts)}`,
      );
    }
    for (const { key } of LIST_QUERIES) {
      for (const one of sized) {
        await new QueryRun(one.server, one.client, key).pages(settings.warmupPages, false);
      }
    }
    const byQuery = new Map<string, QueryRun[]>();
    const perSlice = Math.ceil(settings.pages / settings.slices);
    for (const { key } of LIST_QUERIES) {
      const runs = sized.map((one) => new QueryRun(one.server, one.client, key));
      byQuery.set(key, runs);
      for (const run of runs) {
        await run.pages(settings.warmupPages, false);
      }
      for (let slice = 0; slice < settings.slices; slice++) {
        const pages = Math.min(perSlice, settings.pages - slice * perSlice);
        const order = slice % 2 === 0 ? runs : [...runs].reverse();
        for (const run of order) {
          await run.pages(pages, true);
        }
      }
      const [small, large] = runs.map((run) => run.result());
      log(
        `  ${key}: p50 ${small.p50Ms.toFixed(2)} / ${large.p50Ms.toFixed(2)} ms, p99 ${small.p99Ms.toFixed(2)} / ${large.p99Ms.toFixed(2)} ms, CPU ${small.cpuMicrosPerPage.toFixed(0)} / ${large.cpuMicrosPerPage.toFixed(0)} µs per page`,
      );
    }
    result.sizes = sized.map((one, index) => ({
      conversations: one.size,
      seed: one.seed as SeededInbox,
      queries: LIST_QUERIES.map(({ key }) => (byQuery.get(key) as QueryRun[])[index].result()),
    }));
    const [small, large] = result.sizes;
    result.ratios = LIST_QUERIES.map(({ key }, i) => ({
      query: key,
      p50Ratio: large.queries[i].p50Ms / small.queries[i].p50Ms,
      p99Ratio: large.queries[i].p99Ms / small.queries[i].p99Ms,
      cpuRatio: large.queries[i].cpuMicrosPerPage / small.queries[i].cpuMicrosPerPage,
    }));
    return result;
  } finally {
    for (const one of sized) {
      one.client.close();
      await one.server.stop();
    }
  }
}

export async function runListSuite(
  configurations: Configuration[],
  settings: ListSettings,
  log: (line: string) => void,
): Promise<ListResults> {
  const results: ListConfigurationResult[] = [];
  for (const configuration of listConfigurations(configurations)) {
    results.push(await measureConfiguration(configuration, settings, log));
  }
  return { settings, mix: MIX, configurations: results };
}

const pct = (share: number) => `${Math.round(share * 100)}%`;

const ms = (value: number | undefined) =>
  value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(2);

export function listMarkdown(results: ListResults): string[] {
  const { sizes, pages, warmupPages, slices } = results.settings;
  const [small, large] = sizes;
  const count = (n: number) => n.toLocaleString('en');
  const title = (key: string) => LIST_QUERIES.find((q) => q.key === key)?.title ?? key;
  const { mix } = results;
  const statuses = Object.entries(mix.status)
    .map(([status, share]) => `${status} ${pct(share)}`)
    .join(' / ');
  const lines = [
    `### The agent inbox list (one client, one page at a time; ${count(pages)} pages per query and size)`,
    '',
    `Both sizes of a configuration up at once, each seeded over the API: every conversation with a customer and a first customer message; status ${statuses}; ${pct(mix.assigned)} assigned over ${AGENTS} agents, the rest unassigned; ${pct(mix.inTeam)} in one of ${TEAMS.length} teams; ${pct(mix.replied)} answered by an agent (the rest wait); ${pct(mix.read)} read by the agent (the rest unread). Pages of 50 (the default limit). ${warmupPages} unmeasured pages of every query on each size once both are seeded, and again just before each query, then the measured ones in ${slices} slices alternating between the sizes. Latency from sending to the last byte; CPU: the server's processes per page. Ratio: p50 at ${count(large)} over p50 at ${count(small)} (p99 ratio, CPU ratio).`,
    '',
    `| Configuration | Query | ${count(small)}: p50 / p99 ms | ${count(large)}: p50 / p99 / max ms | CPU µs per page (${count(small)} / ${count(large)}) | rows per page | ratio p50 (p99, CPU) |`,
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  const skipped: string[] = [];
  for (const result of results.configurations) {
    if (result.skipped) {
      skipped.push(`- ${result.label}: ${result.skipped}.`);
      continue;
    }
    const [a, b] = result.sizes;
    for (const { key } of LIST_QUERIES) {
      const x = a?.queries.find((q) => q.query === key);
      const y = b?.queries.find((q) => q.query === key);
      const ratio = result.ratios.find((r) => r.query === key);
      lines.push(
        `| ${result.label} | ${title(key)} | ${ms(x?.p50Ms)} / ${ms(x?.p99Ms)} | ${ms(y?.p50Ms)} / ${ms(y?.p99Ms)} / ${ms(y?.maxMs)} | ${x && y ? `${x.cpuMicrosPerPage.toFixed(0)} / ${y.cpuMicrosPerPage.toFixed(0)}` : '–'} | ${x ? x.meanRows.toFixed(1) : '–'} / ${y ? y.meanRows.toFixed(1) : '–'} | ${ratio ? `${ratio.p50Ratio.toFixed(2)} (${ratio.p99Ratio.toFixed(2)}, ${ratio.cpuRatio.toFixed(2)})` : '–'} |`,
      );
    }
  }
  const seeds = results.configurations.flatMap((result) =>
    result.sizes.map(
      (size) =>
        `- ${result.label}, ${count(size.conversations)}: seeded in ${size.seed.seconds.toFixed(0)} s (${count(size.seed.requests)} requests); counts ${JSON.stringify(size.seed.counts)}; waiting ${count(size.seed.waiting)}, unread by the agent ${count(size.seed.unreadAgent)}, open, unassigned and waiting ${count(size.seed.openUnassignedWaiting)}.`,
    ),
  );
  lines.push('', ...seeds, ...skipped);
  return lines;
}
