import { ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { AddressInfo, createServer } from 'node:net';
import path from 'node:path';

const MAIN = path.resolve(__dirname, '../../dist/main.js');

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

/** Longer than a drain's worst case (SHUTDOWN_GRACE_MS 8 s, then 1 s before workers are killed). */
const STOP_TIMEOUT_MS = 20_000;

export interface ServerProcess {
  readonly baseUrl: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Everything the server printed so far, stdout and stderr. */
  output(): string;
  /** Lines of output matching the pattern. */
  lines(pattern: RegExp): string[];
  waitFor(pattern: RegExp, count?: number, timeoutMs?: number): Promise<void>;
  /** Pids of the workers that are running now, from their log prefix. */
  workerPids(): number[];
  /** Resolves with the exit code and signal once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts the built server (`dist/main.js`, made by `npm run build`, which `npm test` runs
 * first) on a free loopback port and waits until every worker serves.
 */
export async function spawnServer(
  env: Record<string, string> = {},
  {
    waitUntilReady = true,
    readyTimeoutMs = 15_000,
    port: fixedPort,
    main = MAIN,
  }: {
    waitUntilReady?: boolean;
    /** How long each line of a start is waited for; a loaded machine starts workers slowly. */
    readyTimeoutMs?: number;
    port?: number;
    /** Another build to start (a production install in a temporary folder). */
    main?: string;
  } = {},
): Promise<ServerProcess> {
  const port = fixedPort ?? (await freePort());
  const workers = Number(env.WORKERS ?? '2');
  const child = spawn(process.execPath, [main], {
    cwd: path.dirname(path.dirname(main)),
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      WORKERS: String(workers),
      LOG_LEVEL: 'log',
      // Readable lines: the helpers below find workers by their `[worker N] <pid>` prefix.
      LOG_FORMAT: 'pretty',
      // No rate limit unless a test asks for one: suites send thousands of requests from one
      // address. Explicit, so it holds with API_KEYS set too (where the default is 600);
      // RATE_LIMIT_MAX: '' gives the server's default.
      RATE_LIMIT_MAX: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const waiters = new Set<() => void>();
  const append = (chunk: Buffer) => {
    output += chunk.toString();
    waiters.forEach((check) => check());
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );

  const lines = (pattern: RegExp) => output.split('\n').filter((line) => pattern.test(line));
  const waitFor = (pattern: RegExp, count = 1, timeoutMs = 15_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`Timed out waiting for ${count} × ${pattern}; output:\n${output}`));
      }, timeoutMs);
      const check = () => {
        if (lines(pattern).length >= count) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        }
      };
      waiters.add(check);
      void exited.then(() => check());
      check();
    });

  const server: ServerProcess = {
    baseUrl: `http://127.0.0.1:${port}`,
    port,
    child,
    output: () => output,
    lines,
    waitFor,
    workerPids: () => {
      const started = new Map<number, boolean>();
      for (const line of lines(/^\[worker \d+\] \d+ /)) {
        const pid = Number(/^\[worker \d+\] (\d+)/.exec(line)?.[1]);
        started.set(pid, true);
      }
      return [...started.keys()].filter((pid) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      });
    },
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
      }
      // A stop that hangs is a bug to report, not a reason to hang the test run: the server
      // and its workers are killed, and the stop fails with what the server printed.
      const pids = server.workerPids();
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<'hung'>((resolve) => {
        timer = setTimeout(() => resolve('hung'), STOP_TIMEOUT_MS);
      });
      const outcome = await Promise.race([exited, hung]);
      clearTimeout(timer);
      if (outcome === 'hung') {
        for (const pid of [child.pid, ...pids]) {
          try {
            process.kill(pid ?? -1, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        await exited;
        throw new Error(
          `The server did not exit within ${STOP_TIMEOUT_MS} ms of ${signal}; killed. Output:\n${output}`,
        );
      }
      return outcome;
    },
  };
  if (waitUntilReady) {
    try {
      if (workers > 0) {
        await waitFor(/\[worker \d+\].*Serving on port/, workers, readyTimeoutMs);
      }
      // The last line of a start, once every worker serves.
      await waitFor(/Listening on/, 1, readyTimeoutMs);
    } catch (error) {
      // A server that did not start in time is not left running after the suite.
      await server.stop().catch(() => undefined);
      throw error;
    }
  }
  return server;
}

/**
 * Starts built servers at once, waiting up to 45 s for each start (a loaded machine starts
 * workers slowly). If one fails to start, those that did are stopped before the error is
 * thrown, so that no server outlives the suite.
 */
export async function spawnServers(
  envs: Record<string, string>[],
  options: { port?: number } = {},
): Promise<ServerProcess[]> {
  const started = await Promise.allSettled(
    envs.map((env) => spawnServer(env, { readyTimeoutMs: 45_000, ...options })),
  );
  const servers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(servers.map((server) => server.stop().catch(() => undefined)));
    throw failed.reason;
  }
  return servers;
}

export interface TextResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

export interface JsonResponse<T = unknown> {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: T;
}

/** One HTTP request; the body, if any, is sent as JSON. `agent: false` opens a fresh connection. */
export function requestText(
  baseUrl: string,
  method: string,
  path: string,
  {
    body,
    headers = {},
    agent = false,
  }: {
    body?: unknown;
    headers?: Record<string, string>;
    agent?: http.Agent | false;
  } = {},
): Promise<TextResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const request = http.request(
      `${baseUrl}${path}`,
      {
        method,
        agent,
        headers: payload
          ? {
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(payload),
              ...headers,
            }
          : headers,
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, text }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    // A connection handed to a worker that was killed can be left open with no answer.
    request.setTimeout(5_000, () => request.destroy(new Error('request timed out')));
    request.end(payload);
  });
}

/** One HTTP request with JSON in and out; `agent: false` opens a fresh connection. */
export async function requestJson<T = unknown>(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  agent: http.Agent | false = false,
): Promise<JsonResponse<T>> {
  const { status, headers, text } = await requestText(baseUrl, method, path, { body, agent });
  return { status, headers, body: (text ? JSON.parse(text) : undefined) as T };
}

export const unknownId = (): string => randomUUID();

/** Starts the built server before the enclosing describe's tests and stops it after. */
export function useServer(env: Record<string, string> = {}): () => ServerProcess {
  let server: ServerProcess | undefined;
  beforeAll(async () => {
    server = await spawnServer(env);
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
  }, STOP_TIMEOUT_MS + 5_000);
  return () => {
    if (!server) {
      throw new Error('the server has not started');
    }
    return server;
  };
}

/**
 * NODE_OPTIONS that let heapAfterGc weigh a spawned server's store: gc() exposed and the probe
 * (heap-probe.cjs) loaded. The server's own code is unchanged.
 */
export const HEAP_PROBE_OPTIONS = `--expose-gc --require "${path.resolve(__dirname, 'heap-probe.cjs')}"`;

/**
 * The heap the server's primary (or single process) still uses after full garbage
 * collections, in bytes; the server must have been started with HEAP_PROBE_OPTIONS.
 */
export async function heapAfterGc(server: ServerProcess): Promise<number> {
  const probe = /^heap-probe (\d+)$/;
  const before = server.lines(probe).length;
  server.child.kill('SIGUSR2');
  await server.waitFor(probe, before + 1, 10_000);
  return Number(probe.exec(server.lines(probe)[before])?.[1]);
}
