import autocannon from 'autocannon';
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CONFIGURATIONS } from '../http/configurations';
import { Scenario, SCENARIOS, seed } from '../http/scenarios';
import { installCleanup } from '../lib/children';
import { RESULTS_DIR, ROOT, SERVER_MAIN } from '../lib/paths';
import { Configuration, startServer } from '../lib/server';

/**
 * `npm run bench:instructions -- --scenario=post|get20 [--dir=<checkout>] [--config=B|N|...]
 * [--runs=2] [--warmup=3000] [--requests=1000] [--keep]`
 *
 * Instructions per request: the server of `<checkout>/dist` (B; the baselines from this
 * bench's own build) under callgrind, `node --predictable`, seeded as the HTTP scenario is,
 * warmed up, then `--requests` requests counted; prints the instructions callgrind counted
 * over them divided by their number. Unlike CPU time per request, a count hardly moves with
 * the machine's load, so two builds can be compared closely.
 */

interface Options {
  dir: string;
  scenario: string;
  config: string;
  runs: number;
  warmup: number;
  requests: number;
  keep: boolean;
}

/** Single-process configurations only: callgrind would have to follow and sum cluster workers. */
const SINGLE = CONFIGURATIONS.filter((c) => c.workers === 0);
const MEASURED = SCENARIOS.filter((s) => ['post', 'get20'].includes(s.key));
const USAGE = `Usage: npm run bench:instructions -- --scenario=${MEASURED.map((s) => s.key).join('|')} [--dir=<checkout with dist/>] [--config=${SINGLE.map((c) => c.key).join('|')}] [--runs=2] [--warmup=3000] [--requests=1000] [--keep]`;

function parseOptions(argv: string[]): Options {
  const options: Options = {
    dir: ROOT,
    scenario: '',
    config: 'B',
    runs: 2,
    warmup: 3_000,
    requests: 1_000,
    keep: false,
  };
  const count = (arg: string, value: string, least: number) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < least) {
      throw new Error(`${arg}: a whole number of at least ${least} expected. ${USAGE}`);
    }
    return n;
  };
  for (const arg of argv) {
    const [name, value = ''] = arg.split('=');
    if (name === '--dir') {
      options.dir = path.resolve(value);
    } else if (name === '--scenario') {
      options.scenario = value;
    } else if (name === '--config') {
      options.config = value;
    } else if (name === '--runs') {
      options.runs = count(arg, value, 1);
    } else if (name === '--warmup') {
      options.warmup = count(arg, value, 0);
    } else if (name === '--requests') {
      options.requests = count(arg, value, 1);
    } else if (name === '--keep') {
      options.keep = true;
    } else {
      throw new Error(`Unknown option ${arg}. ${USAGE}`);
    }
  }
  return options;
}

const started = performance.now();
const log = (line: string) =>
  process.stderr.write(
    `[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`,
  );

/** The checkout's commit, marked when its tracked files differ from it. */
function describeCheckout(dir: string): string {
  try {
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' }).trim();
    const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' (modified)' : ''}`;
  } catch {
    return 'not a git checkout';
  }
}

/**
 * Valgrind in front of node. Counting starts switched off (`--instr-atstart=no`), so start-up,
 * seeding and warm-up cost nothing; `all-non-file` makes valgrind notice code V8 writes into
 * memory it already ran (the JIT), and is valgrind's default on x86-64 anyway.
 */
function underCallgrind(folder: string) {
  return {
    wrap: (command: string, args: string[]): [string, string[]] => [
      'valgrind',
      [
        '--tool=callgrind',
        '--instr-atstart=no',
        '--smc-check=all-non-file',
        `--callgrind-out-file=${path.join(folder, 'callgrind.out.%p')}`,
        `--vgdb-prefix=${path.join(folder, 'vgdb')}`,
        command,
        '--predictable',
        ...args,
      ],
    ],
  };
}

/** Sends one `callgrind_control` command to the server under valgrind. */
function control(folder: string, pid: number, command: string): void {
  const output = execFileSync(
    'callgrind_control',
    [`--vgdb-prefix=${path.join(folder, 'vgdb')}`, command, String(pid)],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
      // vgdb finds the server's pipes by user and host names from the environment: the server
      // was started with HOST=127.0.0.1 (lib/server.ts) and no USER or LOGNAME.
      env: { PATH: process.env.PATH, HOST: '127.0.0.1' },
    },
  );
  if (!/\bOK\b/.test(output)) {
    throw new Error(`callgrind_control ${command} ${pid}: ${output}`);
  }
}

/** The instructions counted in the first dump of `pid`, once callgrind has written it. */
async function dumpedInstructions(folder: string, pid: number): Promise<[number, string]> {
  const prefix = `callgrind.out.${pid}.`;
  for (let waited = 0; waited < 60_000; waited += 100) {
    const file = readdirSync(folder).find((name) => name.startsWith(prefix));
    const totals = file
      ? /^totals: (\d+)/m.exec(readFileSync(path.join(folder, file), 'utf8'))
      : null;
    if (file && totals) {
      return [Number(totals[1]), path.join(folder, file)];
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no callgrind dump of ${pid} in ${folder}`);
}

/** Each call gives the next request as autocannon would send it on one connection. */
function requestCycle(requests: autocannon.Request[]): () => autocannon.Request {
  let next = 0;
  return () => {
    const entry = requests[next++ % requests.length];
    return entry.setupRequest ? entry.setupRequest({ ...entry }, {}) : entry;
  };
}

/** One request over the one keep-alive connection; anything but a 2xx is thrown. */
function send(agent: http.Agent, baseUrl: string, request: autocannon.Request): Promise<void> {
  const body = request.body ?? '';
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      `${baseUrl}${request.path ?? '/'}`,
      {
        method: request.method ?? 'GET',
        headers: { ...request.headers, 'content-length': Buffer.byteLength(body) },
        agent,
        timeout: 60_000,
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve();
          } else {
            reject(new Error(`${request.method} ${request.path}: ${status} ${text}`));
          }
        });
      },
    );
    outgoing.on('timeout', () => outgoing.destroy(new Error(`${request.path}: timed out`)));
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

interface Run {
  instructions: number;
  perRequest: number;
  seconds: number;
}

async function measureOnce(
  configuration: Configuration,
  scenario: Scenario,
  options: Options,
  run: number,
): Promise<Run> {
  const runStarted = performance.now();
  const folder = mkdtempSync(path.join(tmpdir(), 'bench-instructions-'));
  // The start under valgrind takes tens of seconds, more while other work shares the cores.
  const server = await startServer(configuration, 300_000, underCallgrind(folder));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    log(`run ${run}: started (pid ${server.pid}), seeding`);
    const next = requestCycle(scenario.requests(await seed(server.baseUrl, scenario.seed)));
    const sendMany = async (amount: number) => {
      for (let i = 0; i < amount; i++) {
        await send(agent, server.baseUrl, next());
      }
    };
    log(`run ${run}: ${options.warmup} requests of warm-up`);
    await sendMany(options.warmup);
    log(`run ${run}: ${options.requests} requests counted`);
    control(folder, server.pid, '--instr=on');
    await sendMany(options.requests);
    control(folder, server.pid, '--dump');
    const [instructions, file] = await dumpedInstructions(folder, server.pid);
    if (options.keep) {
      const kept = path.join(
        RESULTS_DIR,
        `callgrind.${configuration.key}.${scenario.key}.${new Date().toISOString().replace(/[:.]/g, '-')}.out`,
      );
      mkdirSync(RESULTS_DIR, { recursive: true });
      copyFileSync(file, kept);
      log(`run ${run}: kept ${path.relative(ROOT, kept)} (callgrind_annotate reads it)`);
    }
    return {
      instructions,
      perRequest: instructions / options.requests,
      seconds: (performance.now() - runStarted) / 1000,
    };
  } finally {
    agent.destroy();
    await server.stop();
    rmSync(folder, { recursive: true, force: true });
  }
}

const thousands = (n: number) => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  installCleanup();
  const options = parseOptions(process.argv.slice(2));
  const scenario = MEASURED.find((s) => s.key === options.scenario);
  if (!scenario) {
    throw new Error(`--scenario missing or unknown. ${USAGE}`);
  }
  const chosen = SINGLE.find((c) => c.key === options.config);
  if (!chosen) {
    throw new Error(`--config: one of ${SINGLE.map((c) => c.key).join(', ')}. ${USAGE}`);
  }
  // The server comes from --dir; a baseline does not import the server, so this bench's own serves.
  const script =
    chosen.script === SERVER_MAIN ? path.join(options.dir, 'dist', 'main.js') : chosen.script;
  if (!existsSync(script)) {
    throw new Error(`${script} not found: run npm run build (or npm run bench once) there first`);
  }
  const configuration: Configuration = { ...chosen, script };
  const where =
    chosen.script === SERVER_MAIN
      ? `${options.dir} at ${describeCheckout(options.dir)}`
      : `${path.relative(ROOT, script)} at ${describeCheckout(ROOT)}`;
  log(`${configuration.label}, ${options.scenario}, ${where}: ${options.runs} run(s)`);

  const runs: Run[] = [];
  for (let run = 1; run <= options.runs; run++) {
    const result = await measureOnce(configuration, scenario, options, run);
    runs.push(result);
    log(`run ${run}: ${thousands(result.perRequest)} per request, ${result.seconds.toFixed(0)} s`);
  }

  const lines = runs.map(
    (r, i) =>
      `run ${i + 1}: ${thousands(r.perRequest)} instructions per request (${thousands(r.instructions)} over ${thousands(options.requests)} requests, ${r.seconds.toFixed(0)} s)`,
  );
  const counts = runs.map((r) => r.perRequest);
  const spread = (Math.max(...counts) / Math.min(...counts) - 1) * 100;
  process.stdout.write(
    [
      `${configuration.key} ${options.scenario}, ${where}, warm-up ${thousands(options.warmup)}:`,
      ...lines,
      ...(runs.length > 1
        ? [
            `runs differ by ${spread.toFixed(1)}%${spread > 3 ? ' (more than 3%: run again before comparing)' : ''}`,
          ]
        : []),
      '',
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
