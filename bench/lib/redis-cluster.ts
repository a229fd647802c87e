import { ChildProcess, execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { spawnTracked, stopGroup } from './children';
import { freePort } from './server';

/*
 * The bench's own copy of test/utils/redis-cluster.ts: bench/ compiles on its own
 * (rootDir bench/, no jest types), so it cannot import from test/.
 */

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Connects, runs `use`, disconnects; a refused connection fails at once rather than retrying. */
async function withClient<T>(port: number, use: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(port, '127.0.0.1', {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await use(client);
  } finally {
    client.disconnect();
  }
}

/** A loopback port whose cluster bus port (port + 10000) is free too. */
async function freeNodePort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = await freePort();
    if (port + 10_000 > 65_535 || taken.has(port) || taken.has(port + 10_000)) {
      continue;
    }
    const bus = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port + 10_000, '127.0.0.1', () => probe.close(() => resolve(true)));
    });
    if (bus) {
      taken.add(port);
      taken.add(port + 10_000);
      return port;
    }
  }
  throw new Error('no free port pair for a Redis Cluster node');
}

function infoField(info: string, name: string): number {
  return Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1]);
}

/**
 * Six redis-server processes on free loopback ports (three masters, three replicas), AOF on,
 * cluster-node-timeout 2 s, in a temporary folder. Each is a tracked child (lib/children.ts),
 * so an interrupted run kills them too; stop() kills them and removes the folder.
 */
export class BenchRedisCluster {
  private constructor(
    readonly ports: number[],
    private readonly dir: string,
    private readonly children: ChildProcess[],
  ) {}

  static async start(log: (line: string) => void): Promise<BenchRedisCluster> {
    const dir = mkdtempSync(path.join(tmpdir(), 'chat-bench-redis-cluster-'));
    // An interrupted run: the processes are killed by lib/children.ts; the folder goes here.
    const removeDir = () => rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    process.once('exit', removeDir);
    const taken = new Set<number>();
    const ports: number[] = [];
    for (let i = 0; i < 6; i++) {
      ports.push(await freeNodePort(taken));
    }
    const children = ports.map((port) =>
      spawnTracked(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--dir',
          dir,
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `nodes-${port}.conf`,
          '--cluster-node-timeout',
          '2000',
          '--appendonly',
          'yes',
          '--appendfilename',
          `appendonly-${port}.aof`,
          '--appenddirname',
          `aof-${port}`,
          '--save',
          '',
          // A replica syncs at once (Redis waits 5 s by default for more to join): until
          // then a master's WAIT gets no acknowledgement.
          '--repl-diskless-sync-delay',
          '0',
        ],
        { stdio: 'ignore', env: { PATH: process.env.PATH } },
      ),
    );
    const cluster = new BenchRedisCluster(ports, dir, children);
    try {
      await Promise.all(ports.map((port) => cluster.waitForPing(port)));
      await run('redis-cli', [
        '--cluster',
        'create',
        ...cluster.addresses,
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ]);
      await cluster.waitUntilOk();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    log(`Redis Cluster on ${cluster.seeds} (masters ${(await cluster.masters()).join(', ')})`);
    return cluster;
  }

  get addresses(): string[] {
    return this.ports.map((port) => `127.0.0.1:${port}`);
  }

  /** The seed list, as REDIS_CLUSTER_NODES takes it. */
  get seeds(): string {
    return this.addresses.join(',');
  }

  private async waitForPing(port: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await withClient(port, (client) => client.ping());
        return;
      } catch (error) {
        if (Date.now() > deadline) {
          throw new Error(`redis-server (cluster node) did not start on ${port}: ${String(error)}`);
        }
        await sleep(50);
      }
    }
  }

  /** Until every node reports cluster_state:ok with 3 masters, and each master's replica is online. */
  async waitUntilOk(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(
        this.ports.map((port) =>
          withClient(port, async (client) => {
            const info = (await client.cluster('INFO')) as string;
            if (!/cluster_state:ok/.test(info) || !/cluster_size:3/.test(info)) {
              return false;
            }
            const replication = await client.info('replication');
            return !/role:master/.test(replication) || /slave0:.*state=online/.test(replication);
          }).catch(() => false),
        ),
      );
      if (states.every(Boolean)) {
        return;
      }
      if (Date.now() > deadline) {
        throw new Error('the bench Redis Cluster did not reach cluster_state:ok');
      }
      await sleep(100);
    }
  }

  /** Addresses of the masters, as the cluster says now. */
  async masters(): Promise<string[]> {
    const found: string[] = [];
    for (const port of this.ports) {
      const role = await withClient(port, (client) => client.info('replication'));
      if (/role:master/.test(role)) {
        found.push(`127.0.0.1:${port}`);
      }
    }
    return found;
  }

  /** CPU seconds (user + system) all six nodes have used since they started. */
  async cpuSeconds(): Promise<number> {
    const each = await Promise.all(
      this.ports.map((port) =>
        withClient(port, async (client) => {
          const info = await client.info('cpu');
          return infoField(info, 'used_cpu_user') + infoField(info, 'used_cpu_sys');
        }),
      ),
    );
    return each.reduce((sum, seconds) => sum + seconds, 0);
  }

  /** Commands each master has run since it started (every cmdstat_* `calls=`), by address. */
  async masterCommandCalls(): Promise<Record<string, number>> {
    const calls: Record<string, number> = {};
    for (const address of await this.masters()) {
      const port = Number(address.split(':')[1]);
      const stats = await withClient(port, (client) => client.info('commandstats'));
      calls[address] = [...stats.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)].reduce(
        (sum, match) => sum + Number(match[1]),
        0,
      );
    }
    return calls;
  }

  /** Empties every master (the replicas follow): each server start begins on an empty store. */
  async flush(): Promise<void> {
    for (const address of await this.masters()) {
      await withClient(Number(address.split(':')[1]), (client) => client.flushall('ASYNC'));
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map((child) => stopGroup(child, 0)));
    rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
  }
}
