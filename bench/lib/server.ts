import { ChildProcess } from 'node:child_process';
import { CpuPinning } from './cpu-pinning';
import { AddressInfo, createServer } from 'node:net';
import { spawnTracked, stopGroup } from './children';
import { benchScript } from './paths';
import { processTree } from './proc-stats';
import { READY_MARK } from './ready-mark';

/** One way of serving the API that the HTTP scenarios measure. */
export interface Configuration {
  key: string;
  label: string;
  /** The node script that serves (compiled JS). */
  script: string;
  /** Extra environment for it, on top of what every configuration gets. */
  env: Record<string, string>;
  /** Cluster workers it forks; 0 when one process serves. */
  workers: number;
  /** Environment made anew for each start (a fresh Redis key prefix: every start is empty). */
  perStart?: () => Record<string, string>;
  /** Called with that environment once the server has stopped (to delete its keys). */
  afterStop?: (env: Record<string, string>) => Promise<void>;
  /** Started once before the suites and stopped after them (F's Redis Cluster). */
  setup?: (log: (line: string) => void) => Promise<void>;
  teardown?: () => Promise<void>;
  /** CPU seconds the store's own servers have used so far (Redis, outside the process tree). */
  storeCpuSeconds?: () => Promise<number>;
  /** Commands each Redis Cluster master has run so far, by address. */
  masterCommandCalls?: () => Promise<Record<string, number>>;
  /** The HTTP scenarios it runs in; every one when absent. */
  scenarios?: string[];
  /** Left out of the real-time measures (which otherwise run every one that forks workers). */
  httpOnly?: true;
}

/** Environment shared by every configuration: loopback, quiet, no capacity limit in the way. */
const COMMON_ENV: Record<string, string> = {
  NODE_ENV: 'production',
  HOST: '127.0.0.1',
  LOG_LEVEL: 'silent',
  // The create scenario stores a few hundred thousand conversations: the default cap of
  // 100,000 would turn the tail of the run into 503s.
  MAX_CONVERSATIONS: '10000000',
  // The load comes from one address, far over the default per-address rate limit: the
  // benchmarks measure serving, not refusing.
  RATE_LIMIT_MAX: '0',
  // The fan-out measure opens a thousand event streams from this one address.
  MAX_EVENT_STREAMS_PER_CLIENT: '100000',
};

export interface RunningServer {
  readonly configuration: Configuration;
  readonly baseUrl: string;
  readonly port: number;
  /** The process we started: the cluster primary, or the only process. */
  readonly pid: number;
  /** That process and its descendants (the workers), alive now. */
  pids(): number[];
  output(): string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const READY_LINE = new RegExp(`^${READY_MARK} (\\d+)$`, 'gm');

/**
 * Starts a configuration on a free loopback port and resolves once every process that should
 * serve is listening: the only process, or each cluster worker (not the primary, whose
 * listening handle exists as soon as the first worker listens). With `wrapper`, it runs under
 * what that puts in front of node: taskset on the server's core (cpu-pinning.ts), or valgrind
 * (instructions/instructions.ts).
 */
export async function startServer(
  configuration: Configuration,
  timeoutMs = 30_000,
  wrapper?: Pick<CpuPinning, 'wrap'>,
): Promise<RunningServer> {
  const port = await freePort();
  const fresh = configuration.perStart?.() ?? {};
  // taskset execs node in its place and valgrind runs node inside itself: either way the pid
  // is the server's.
  const [command, args] = wrapper
    ? wrapper.wrap(process.execPath, [configuration.script])
    : [process.execPath, [configuration.script]];
  const child: ChildProcess = spawnTracked(command, args, {
    env: {
      PATH: process.env.PATH,
      ...COMMON_ENV,
      PORT: String(port),
      WORKERS: String(configuration.workers),
      NODE_OPTIONS: `--require ${benchScript('lib/ready-probe.js')}`,
      ...configuration.env,
      ...fresh,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid as number;
  let output = '';
  let onOutput: () => void = () => undefined;
  const append = (chunk: Buffer) => {
    output += chunk.toString();
    onOutput();
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);

  const server: RunningServer = {
    configuration,
    port,
    pid,
    baseUrl: `http://127.0.0.1:${port}`,
    pids: () => processTree(pid),
    output: () => output,
    // Killed outright: the store is in memory and a graceful drain would only cost time.
    stop: async () => {
      await stopGroup(child, 0);
      await configuration.afterStop?.(fresh);
    },
  };

  const needed = Math.max(configuration.workers, 1);
  let onExit: (code: number | null, signal: NodeJS.Signals | null) => void = () => undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${configuration.label} did not start in time:\n${output}`)),
        timeoutMs,
      );
      onExit = (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${configuration.label} exited (${code ?? signal}) on start:\n${output}`));
      };
      child.once('exit', onExit);
      onOutput = () => {
        const listening = new Set([...output.matchAll(READY_LINE)].map((match) => match[1]));
        if (configuration.workers > 0) {
          listening.delete(String(pid));
        }
        if (listening.size >= needed) {
          clearTimeout(timer);
          resolve();
        }
      };
      onOutput();
    });
  } catch (error) {
    await server.stop();
    throw error;
  }
  child.off('exit', onExit);
  return server;
}
