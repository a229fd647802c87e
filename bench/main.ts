import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { HubResults, runHubSuite } from './hub/hub-suite';
import { CONFIGURATIONS } from './http/configurations';
import {
  FULL_LIST,
  listConfigurations,
  listMarkdown,
  ListResults,
  QUICK_LIST,
  runListSuite,
} from './inbox/list-suite';
import { Cell, HttpTiming, runHttpSuite } from './http/http-suite';
import { PairedRatio, PairTiming, runPairedSuite } from './http/paired-suite';
import { SCENARIOS } from './http/scenarios';
import { installCleanup } from './lib/children';
import { describeMachine } from './lib/machine';
import { RESULTS_DIR, ROOT, SERVER_MAIN } from './lib/paths';
import { baselineResults } from './report/baselines';
import { clusterResults } from './report/cluster';
import { renderMarkdown } from './report/markdown';
import { computeTargets } from './report/targets';
import { FULL_SCALE, QUICK_SCALE, runScaleSuite, ScaleResults } from './scale/scale-suite';
import {
  FULL_WEBHOOKS,
  QUICK_WEBHOOKS,
  runWebhookSuite,
  webhookConfigurations,
  webhookSecondsPerConfiguration,
  WebhookResults,
  webhooksMarkdown,
} from './webhooks/webhook-suite';
import {
  BacklogResult,
  backlogMarkdown,
  FULL_BACKLOG,
  QUICK_BACKLOG,
  runBacklogSuite,
} from './realtime/backlog-suite';
import {
  FULL_REALTIME,
  QUICK_REALTIME,
  realtimeMarkdown,
  RealtimeResults,
  runRealtimeSuite,
} from './realtime/realtime-suite';

/**
 * `npm run bench [-- --quick] [--configs=A,E,N,NP,NX,X,B,C,L,D,F,FW] [--scenarios=post,get20,list,webhooks] [--skip=http,paired,scale,hub,realtime,backlog,list,webhooks]`
 * Builds the server once, runs the HTTP scenarios, the inbox list, the webhooks, the scale
 * checks and the hub micro-benchmark, prints a markdown report and writes bench/results/<timestamp>.json.
 */

const FULL = {
  http: { warmupSeconds: 3, measureSeconds: 7, rounds: 3, connections: 50 } satisfies HttpTiming,
  paired: { warmupSeconds: 3, slices: 16, sliceSeconds: 1, connections: 50 } satisfies PairTiming,
  hub: { measureSeconds: 5, warmupSeconds: 1, inFlightPerWorker: 32 },
  scale: FULL_SCALE,
  realtime: FULL_REALTIME,
  backlog: FULL_BACKLOG,
  list: FULL_LIST,
  webhooks: FULL_WEBHOOKS,
};

const QUICK = {
  // About 2 minutes for the 32 HTTP cells: a 1 s warm-up (Nest needs it far more than node:http) and
  // a short measurement. Indicative numbers only; the full run is the one to judge by.
  http: { warmupSeconds: 1, measureSeconds: 1.5, rounds: 1, connections: 50 } satisfies HttpTiming,
  paired: { warmupSeconds: 1, slices: 4, sliceSeconds: 0.5, connections: 50 } satisfies PairTiming,
  hub: { measureSeconds: 1.5, warmupSeconds: 0.5, inFlightPerWorker: 32 },
  scale: QUICK_SCALE,
  realtime: QUICK_REALTIME,
  backlog: QUICK_BACKLOG,
  list: QUICK_LIST,
  webhooks: QUICK_WEBHOOKS,
};

interface Options {
  quick: boolean;
  configurations: string[] | null;
  scenarios: string[] | null;
  skip: Set<string>;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { quick: false, configurations: null, scenarios: null, skip: new Set() };
  const list = (value: string) => value.split(',').filter(Boolean);
  for (const arg of argv) {
    const [name, value = ''] = arg.split('=');
    if (name === '--quick') {
      options.quick = true;
    } else if (name === '--configs') {
      options.configurations = list(value);
    } else if (name === '--scenarios') {
      options.scenarios = list(value);
    } else if (name === '--skip') {
      list(value).forEach((suite) => options.skip.add(suite));
    } else {
      throw new Error(
        `Unknown option ${arg}. Usage: npm run bench -- [--quick] [--configs=${CONFIGURATIONS.map((c) => c.key).join(',')}] [--scenarios=${[...SCENARIOS.map((s) => s.key), LIST, WEBHOOKS].join(',')}] [--skip=${SKIPPABLE}]`,
      );
    }
  }
  return options;
}

/** The inbox list (inbox/list-suite.ts): a scenario of its own, not an autocannon one. */
const LIST = 'list';
/** The webhooks (webhooks/webhook-suite.ts): likewise. */
const WEBHOOKS = 'webhooks';
const SKIPPABLE = 'http,paired,scale,hub,realtime,backlog,list,webhooks';

const started = performance.now();
const log = (line: string) =>
  process.stderr.write(
    `[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`,
  );

function build(): void {
  log('npm run build');
  const result = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (result.status !== 0 || !existsSync(SERVER_MAIN)) {
    process.stderr.write(`${result.stdout ?? ''}${result.stderr ?? ''}`);
    throw new Error(`npm run build failed (exit ${result.status ?? result.signal})`);
  }
}

async function attempt<T>(
  name: string,
  errors: string[],
  run: () => Promise<T>,
): Promise<T | null> {
  try {
    return await run();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    errors.push(`${name}: ${message}`);
    log(`${name} FAILED: ${message}`);
    return null;
  }
}

async function main(): Promise<void> {
  installCleanup();
  const options = parseOptions(process.argv.slice(2));
  const settings = options.quick ? QUICK : FULL;
  const startedAt = new Date();
  const unknown = (options.configurations ?? []).filter(
    (key) => !CONFIGURATIONS.some((c) => c.key === key),
  );
  if (unknown.length > 0) {
    throw new Error(
      `Unknown configuration ${unknown.join(', ')} (known: ${CONFIGURATIONS.map((c) => c.key).join(', ')})`,
    );
  }
  const unknownScenarios = (options.scenarios ?? []).filter(
    (key) => key !== LIST && key !== WEBHOOKS && !SCENARIOS.some((s) => s.key === key),
  );
  if (unknownScenarios.length > 0) {
    throw new Error(
      `Unknown scenario ${unknownScenarios.join(', ')} (known: ${[...SCENARIOS.map((s) => s.key), LIST, WEBHOOKS].join(', ')})`,
    );
  }
  // The list runs in a full run and when --scenarios names it; never in --quick unless named.
  const runList =
    !options.skip.has(LIST) &&
    (options.scenarios ? options.scenarios.includes(LIST) : !options.quick);
  // The webhooks likewise.
  const runWebhooks =
    !options.skip.has(WEBHOOKS) &&
    (options.scenarios ? options.scenarios.includes(WEBHOOKS) : !options.quick);
  let configurations = CONFIGURATIONS.filter(
    (c) => !options.configurations || options.configurations.includes(c.key),
  );
  const scenarios = SCENARIOS.filter((s) =>
    options.scenarios ? options.scenarios.includes(s.key) : !options.quick || s.quick,
  );
  const machine = describeMachine();
  log(
    `${options.quick ? 'quick' : 'full'} run on ${machine.cores} cores (${machine.cpuModel}), Node ${machine.node}`,
  );
  const runsIn = (scenario: (typeof scenarios)[number]) =>
    configurations.filter((c) => !c.scenarios || c.scenarios.includes(scenario.key)).length;
  const cells = options.skip.has('http')
    ? 0
    : scenarios.reduce((total, scenario) => total + runsIn(scenario), 0);
  const { warmupSeconds, measureSeconds, rounds } = settings.http;
  const estimate =
    10 +
    rounds * cells * (warmupSeconds + measureSeconds + 1.5) +
    rounds *
      measureSeconds *
      scenarios.filter((s) => s.fixedRate).reduce((total, s) => total + runsIn(s), 0) +
    (options.skip.has('paired') || scenarios.length === 0
      ? 0
      : 4 *
        (2 * (settings.paired.warmupSeconds + 6) +
          2 * settings.paired.slices * (settings.paired.sliceSeconds + 0.2))) +
    (options.skip.has('scale') ? 0 : options.quick ? 10 : 70) +
    (options.skip.has('hub')
      ? 0
      : 2 * (settings.hub.warmupSeconds + settings.hub.measureSeconds) + 2) +
    (options.skip.has('realtime') ? 0 : options.quick ? 15 : 90) +
    (options.skip.has('backlog') || !configurations.some((c) => c.key === 'B')
      ? 0
      : 15 +
        settings.backlog.maxSeconds +
        3 * settings.backlog.warmupSeconds +
        3 * settings.backlog.slices * (settings.backlog.sliceSeconds + 0.3)) +
    // Seeding about 4 requests per conversation at some 4,000 a second, then the pages.
    (runList
      ? listConfigurations(configurations).length *
        settings.list.sizes.reduce(
          (total, size) =>
            total +
            5 +
            size / 1_000 +
            5 * (settings.list.pages + 2 * settings.list.warmupPages) * 0.003,
          0,
        )
      : 0) +
    (runWebhooks
      ? webhookConfigurations(configurations).length *
        webhookSecondsPerConfiguration(settings.webhooks)
      : 0);
  log(`about ${Math.round(estimate / 60)} min (${Math.round(estimate)} s) expected`);
  build();

  const errors: string[] = [];
  // What a configuration needs beside it while the HTTP and real-time suites run (F's Redis
  // Cluster, for these and the inbox list); one that cannot get it is left out of this run, with
  // the reason among the errors.
  const usesConfigurations =
    !options.skip.has('http') || !options.skip.has('realtime') || runList || runWebhooks;
  const ready: typeof configurations = [];
  for (const configuration of configurations) {
    if (!configuration.setup || !usesConfigurations) {
      ready.push(configuration);
    } else if (
      await attempt(`${configuration.label} setup`, errors, async () => {
        await configuration.setup?.(log);
        return true;
      })
    ) {
      ready.push(configuration);
    }
  }
  configurations = ready;
  let tornDown = false;
  const teardown = async () => {
    if (!tornDown) {
      tornDown = true;
      for (const configuration of configurations) {
        await attempt(`${configuration.label} teardown`, errors, async () =>
          configuration.teardown?.(),
        );
      }
    }
  };

  let http: Cell[] | null = null;
  let paired: PairedRatio[] | null = null;
  let scale: ScaleResults | null = null;
  let hub: HubResults | null = null;
  let realtime: RealtimeResults | null = null;
  let backlog: BacklogResult | null = null;
  let list: ListResults | null = null;
  let webhooks: WebhookResults | null = null;
  try {
    if (!options.skip.has('http') && scenarios.length > 0) {
      http = await attempt('HTTP scenarios', errors, () =>
        runHttpSuite(configurations, scenarios, settings.http, log),
      );
    }
    if (runList) {
      list = await attempt('inbox list', errors, () =>
        runListSuite(configurations, settings.list, log),
      );
    }
    if (runWebhooks) {
      webhooks = await attempt('webhooks', errors, () =>
        runWebhookSuite(configurations, settings.webhooks, log),
      );
    }
    if (!options.skip.has('paired') && scenarios.length > 0) {
      paired = await attempt('paired ratios', errors, () =>
        runPairedSuite(configurations, scenarios, settings.paired, log),
      );
    }
    if (options.skip.has('realtime')) {
      // Not left running beside the scale checks and the hub micro-benchmark.
      await teardown();
    }
    if (!options.skip.has('scale')) {
      scale = await attempt('scale checks', errors, () => runScaleSuite(settings.scale, log));
    }
    if (!options.skip.has('hub')) {
      hub = await attempt('hub micro-benchmark', errors, () => runHubSuite(settings.hub, log));
    }
    if (!options.skip.has('realtime')) {
      realtime = await attempt('real-time measures', errors, () =>
        runRealtimeSuite(configurations, settings.realtime, log),
      );
    }
    // Post latency with paused event streams, on B (issue 29): when B is among the configurations.
    const single = configurations.find((c) => c.key === 'B');
    if (!options.skip.has('backlog') && single) {
      backlog = await attempt('paused streams', errors, () =>
        runBacklogSuite(single, settings.backlog, log),
      );
    }
  } finally {
    await teardown();
  }

  const targets = computeTargets({
    http,
    scale,
    hub,
    realtime,
    paired,
    backlog,
    list,
    webhooks,
  });
  const seconds = (performance.now() - started) / 1000;
  const report = {
    mode: options.quick ? ('quick' as const) : ('full' as const),
    startedAt,
    seconds,
    machine,
    timing: settings.http,
    configurations,
    scenarios,
    http,
    scale,
    hub,
    realtime,
    backlog,
    list,
    webhooks,
    baselines: baselineResults(http),
    paired,
    pairTiming: settings.paired,
    cluster: clusterResults(http),
    errors,
    targets,
  };
  const markdown = renderMarkdown(report).replace(
    "### Targets (from this run's medians)",
    [
      ...(realtime ? [realtimeMarkdown(realtime)] : []),
      ...(backlog ? [backlogMarkdown(backlog)] : []),
      ...(list ? [listMarkdown(list)] : []),
      ...(webhooks ? [webhooksMarkdown(webhooks)] : []),
      ["### Targets (from this run's medians)"],
    ]
      .map((section) => section.join('\n'))
      .join('\n\n'),
  );
  process.stdout.write(`\n${markdown}\n`);

  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        ...report,
        settings,
        scenarios: scenarios.map(({ key, title, seed, fixedRate }) => ({
          key,
          title,
          seed,
          fixedRate,
        })),
        markdown,
      },
      null,
      2,
    )}\n`,
  );
  log(`wrote ${path.relative(ROOT, file)}`);
  process.exitCode = errors.length > 0 ? 1 : 0;
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
