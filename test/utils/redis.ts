import { ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort, ServerProcess, spawnServers } from './spawn-server';

/**
 * How the Redis suites find Redis: REDIS_URL when set; otherwise a private redis-server that
 * the suite starts on a free port (and stops), when the binary is installed; otherwise the
 * suites are skipped with a loud notice, except under CI=true, where they fail.
 */
export type RedisSource = { kind: 'url'; url: string } | { kind: 'binary'; binary: string };

function findBinary(): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'redis-server');
    if (dir && existsSync(candidate)) {
      return candidate;
    }
  }
  return null;
}

/** redis-server, if installed: the outage test starts and stops one of its own. */
export const REDIS_BINARY = findBinary();

export const REDIS_SOURCE: RedisSource | null = process.env.REDIS_URL
  ? { kind: 'url', url: process.env.REDIS_URL }
  : REDIS_BINARY
    ? { kind: 'binary', binary: REDIS_BINARY }
    : null;

/** A redis-server of the test's own, on a free loopback port, without persistence. */
export class PrivateRedis {
  private child: ChildProcess | null = null;

  private constructor(
    private readonly binary: string,
    readonly port: number,
    private readonly extraArgs: string[],
  ) {}

  /** @param extraArgs more redis-server options, such as ['--maxmemory', '16mb'] */
  static async start(binary: string, extraArgs: string[] = []): Promise<PrivateRedis> {
    const redis = new PrivateRedis(binary, await freePort(), extraArgs);
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it (again, on the same port). */
  async start(): Promise<void> {
    const child = spawn(
      this.binary,
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        ...this.extraArgs,
      ],
      { stdio: 'ignore' },
    );
    this.child = child;
    const deadline = Date.now() + 10_000;
    for (;;) {
      const client = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.ping();
        client.disconnect();
        return;
      } catch (error) {
        client.disconnect();
        if (Date.now() > deadline || child.exitCode !== null) {
          throw new Error(`redis-server did not start on port ${this.port}: ${String(error)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  /** Sends it a signal: SIGSTOP stalls it (commands wait, unanswered), SIGCONT resumes it. */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  /** Stops it at once (SIGKILL): to the server, Redis is simply gone. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) {
      return;
    }
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}

/** The keys under `prefix`, as they stand (SCAN). */
export async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  return found;
}

/** A Redis for one suite: its URL, and a key prefix of its own that is cleaned up after. */
export interface TestRedis {
  url: string;
  /** A prefix unique to this run and call: nothing else in that Redis uses it. */
  newPrefix(): string;
  /** Keys under the prefix, as they stand. */
  keys(prefix: string): Promise<string[]>;
  /** A client for the test's own look at the data. */
  admin: Redis;
}

/**
 * A suite whose service is missing: under CI=true it fails (`test` names the failing test,
 * `error` says why), elsewhere it is skipped with a loud notice (`notice`).
 */
export function describeUnavailable(
  name: string,
  test: string,
  error: string,
  notice: string,
  body: () => void,
): void {
  if (process.env.CI === 'true') {
    describe(name, () => {
      it(`${test} (CI=true does not skip)`, () => {
        throw new Error(error);
      });
    });
    return;
  }
  process.stderr.write(`\n*** SKIPPED: "${name}" ${notice} ***\n\n`);
  describe.skip(name, body);
}

/**
 * `describe` for suites that start redis-server processes of their own (an outage, a stall, a
 * maxmemory of their own): skipped with a loud notice without the binary, and failing under
 * CI=true, like describeWithRedis.
 */
export function describeWithRedisBinary(name: string, body: (binary: string) => void): void {
  if (!REDIS_BINARY) {
    describeUnavailable(
      name,
      'needs redis-server installed (it starts its own)',
      'redis-server is not installed',
      'needs redis-server installed (Debian: apt-get install redis-server); it starts its own.',
      () => body(''),
    );
    return;
  }
  describe(name, () => body(REDIS_BINARY as string));
}

/**
 * `describe` for suites that need Redis (see RedisSource). Every key prefix handed out is
 * deleted after the suite, and a private server is stopped.
 */
export function describeWithRedis(name: string, body: (redis: () => TestRedis) => void): void {
  if (!REDIS_SOURCE) {
    describeUnavailable(
      name,
      'needs Redis: set REDIS_URL or install redis-server',
      'No Redis: REDIS_URL is not set and redis-server is not installed',
      'needs Redis. Set REDIS_URL=redis://host:port, or install redis-server (Debian: apt-get install redis-server) to let the tests start one.',
      () => body(() => undefined as unknown as TestRedis),
    );
    return;
  }
  const source = REDIS_SOURCE;
  describe(name, () => {
    let server: PrivateRedis | null = null;
    let admin: Redis;
    let url = '';
    const prefixes: string[] = [];
    const run = randomUUID().slice(0, 8);
    const keys = (prefix: string) => keysUnder(admin, prefix);

    beforeAll(async () => {
      if (source.kind === 'binary') {
        server = await PrivateRedis.start(source.binary);
        url = server.url;
      } else {
        url = source.url;
      }
      admin = new Redis(url, { maxRetriesPerRequest: 1 });
    });

    body(() => ({
      url,
      newPrefix: () => {
        const prefix = `test:${run}:${prefixes.length}:`;
        prefixes.push(prefix);
        return prefix;
      },
      keys,
      admin,
    }));

    // Declared after the body's own hooks, so it runs after them (jest runs a block's afterAll
    // hooks in the order they were declared): servers the body stops in its afterAll (as
    // useRedisInstances does) write no key after this cleanup.
    afterAll(async () => {
      for (const prefix of prefixes) {
        const left = await keys(prefix);
        if (left.length > 0) {
          await admin.del(...left);
        }
      }
      admin.disconnect();
      await server?.stop();
    });
  });
}

/**
 * Starts one built server per `envs` entry (each `{}` by default adds nothing) on the suite's
 * Redis, all sharing one new key prefix, before the enclosing describe's tests, and stops
 * them after: instances of one deployment (spawnServers: if one fails to start, the others
 * are stopped).
 */
export function useRedisInstances(
  redis: () => TestRedis,
  envs: Record<string, string>[],
): () => ServerProcess[] {
  let servers: ServerProcess[] = [];
  beforeAll(async () => {
    const shared = {
      STORE: 'redis',
      REDIS_URL: redis().url,
      REDIS_KEY_PREFIX: redis().newPrefix(),
    };
    servers = await spawnServers(envs.map((env) => ({ ...shared, ...env })));
  }, 60_000);
  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
  }, 30_000);
  return () => servers;
}
