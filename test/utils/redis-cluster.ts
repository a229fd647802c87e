import { ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { describeUnavailable, REDIS_BINARY } from './redis';

const run = promisify(execFile);

/** Whether a loopback port can be bound now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port whose cluster bus port (port + 10000) is free too. */
async function freeNodePort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if (taken.has(port) || taken.has(port + 10_000)) {
      continue;
    }
    if ((await portFree(port)) && (await portFree(port + 10_000))) {
      taken.add(port);
      taken.add(port + 10_000);
      return port;
    }
  }
  throw new Error('no free port pair for a Redis Cluster node');
}

/** One redis-server of the cluster, in its own folder (nodes.conf, AOF). */
export class ClusterNode {
  private child: ChildProcess | null = null;

  constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly binary: string,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts it (again: with its nodes.conf and AOF, it rejoins the cluster it left). */
  async start(): Promise<void> {
    this.child = spawn(
      this.binary,
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${this.port}.conf`,
        '--cluster-node-timeout',
        '2000',
        // While one shard fails over, the others keep serving (see the README).
        '--cluster-require-full-coverage',
        'no',
        '--appendonly',
        'yes',
        '--appendfilename',
        `appendonly-${this.port}.aof`,
        '--appenddirname',
        `aof-${this.port}`,
        '--save',
        '',
        // A replica syncs at once (Redis waits 5 s by default for more to join): until then
        // a master's WAIT gets no acknowledgement.
        '--repl-diskless-sync-delay',
        '0',
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 10_000;
    for (;;) {
      const client = new Redis(this.port, '127.0.0.1', {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
      });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.ping();
        client.disconnect();
        return;
      } catch (error) {
        client.disconnect();
        if (Date.now() > deadline || !this.running) {
          throw new Error(
            `redis-server (cluster node) did not start on ${this.port}: ${String(error)}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  /** Kills it at once: to the cluster it simply vanishes. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) {
      return;
    }
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  client(): Redis {
    const client = new Redis(this.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    return client;
  }
}

/**
 * A Redis Cluster of the test's own: six redis-server processes on free loopback ports
 * (three masters, three replicas), cluster-node-timeout 2 s, AOF on, in a temporary folder
 * removed by stop().
 */
export class TestRedisCluster {
  private constructor(
    readonly nodes: ClusterNode[],
    private readonly dir: string,
  ) {}

  static async start(binary: string): Promise<TestRedisCluster> {
    const dir = mkdtempSync(path.join(tmpdir(), 'chat-redis-cluster-'));
    const taken = new Set<number>();
    const nodes: ClusterNode[] = [];
    for (let i = 0; i < 6; i++) {
      nodes.push(new ClusterNode(await freeNodePort(taken), dir, binary));
    }
    const cluster = new TestRedisCluster(nodes, dir);
    try {
      await Promise.all(nodes.map((node) => node.start()));
      await run(path.join(path.dirname(binary), 'redis-cli'), [
        '--cluster',
        'create',
        ...nodes.map((node) => node.address),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ]);
      await cluster.waitUntilOk();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** The seed list, as REDIS_CLUSTER_NODES takes it. */
  get seeds(): string {
    return this.nodes.map((node) => node.address).join(',');
  }

  /**
   * Polls every running node until each reports cluster_state:ok and agrees on 3 masters,
   * and (unless `replicas` is false) every master has a replica in sync.
   */
  async waitUntilOk(timeoutMs = 20_000, replicas = true): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(
        this.nodes
          .filter((node) => node.running)
          .map(async (node) => {
            const client = node.client();
            try {
              const info = (await client.cluster('INFO')) as string;
              if (!/cluster_state:ok/.test(info) || !/cluster_size:3/.test(info)) {
                return false;
              }
              const replication = await client.info('replication');
              return (
                !replicas ||
                !/role:master/.test(replication) ||
                /slave0:.*state=online/.test(replication)
              );
            } catch {
              return false;
            } finally {
              client.disconnect();
            }
          }),
      );
      if (states.every(Boolean)) {
        return;
      }
      if (Date.now() > deadline) {
        throw new Error('the Redis Cluster did not reach cluster_state:ok');
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The nodes that are masters now, as the cluster itself says. */
  async masters(): Promise<ClusterNode[]> {
    const running = this.nodes.find((node) => node.running);
    if (!running) {
      return [];
    }
    const client = running.client();
    try {
      const lines = ((await client.cluster('NODES')) as string).trim().split('\n');
      const ports = lines
        .filter((line) => / master /.test(` ${line.split(' ')[2].replace(/,/g, ' ')} `))
        .filter((line) => !/fail/.test(line.split(' ')[2]))
        .map((line) => Number(line.split(' ')[1].split('@')[0].split(':')[1]));
      return this.nodes.filter((node) => ports.includes(node.port));
    } finally {
      client.disconnect();
    }
  }

  /** The master that serves a slot now, as a running node's CLUSTER SLOTS says. */
  async ownerOf(slot: number): Promise<ClusterNode> {
    const running = this.nodes.find((node) => node.running);
    const client = running?.client();
    try {
      const ranges = ((await client?.cluster('SLOTS')) ?? []) as unknown as [
        number,
        number,
        [string, number],
      ][];
      const port = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2][1];
      const owner = this.nodes.find((node) => node.port === port);
      if (!owner) {
        throw new Error(`no master serves slot ${slot}`);
      }
      return owner;
    } finally {
      client?.disconnect();
    }
  }

  /**
   * Reshards one slot to another master, as an operator would: IMPORTING on the target,
   * MIGRATING on the source, MIGRATE of its keys, then SETSLOT NODE on every master (the
   * target first). The source then tells its sharded subscribers of the slot that they were
   * unsubscribed.
   */
  async moveSlot(slot: number): Promise<{ from: ClusterNode; to: ClusterNode }> {
    const from = await this.ownerOf(slot);
    const masters = await this.masters();
    const to = masters.find((node) => node !== from);
    if (!to) {
      throw new Error('no other master to move the slot to');
    }
    const clients = new Map(masters.map((node) => [node, node.client()]));
    const on = (node: ClusterNode) => clients.get(node) as Redis;
    try {
      const id = async (node: ClusterNode) => String(await on(node).call('CLUSTER', 'MYID'));
      const [fromId, toId] = [await id(from), await id(to)];
      await on(to).call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', fromId);
      await on(from).call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', toId);
      for (let batch = 0; batch < 100; batch++) {
        const keys = (await on(from).call(
          'CLUSTER',
          'GETKEYSINSLOT',
          String(slot),
          '100',
        )) as string[];
        if (keys.length === 0) {
          break;
        }
        await on(from).call(
          'MIGRATE',
          '127.0.0.1',
          String(to.port),
          '',
          '0',
          '5000',
          'KEYS',
          ...keys,
        );
      }
      for (const node of [to, from, ...masters.filter((m) => m !== to && m !== from)]) {
        await on(node).call('CLUSTER', 'SETSLOT', String(slot), 'NODE', toId);
      }
      return { from, to };
    } finally {
      clients.forEach((client) => client.disconnect());
    }
  }

  /** A client of the whole cluster, for the test's own look at the data. */
  client(): Cluster {
    const client = new Cluster(
      this.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
      { redisOptions: { maxRetriesPerRequest: 1 } },
    );
    client.on('error', () => undefined);
    return client;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * `describe` for suites that need a Redis Cluster: one the suite starts from redis-server
 * (see TestRedisCluster), never a shared one, since the suites kill its nodes; without
 * redis-server it is skipped with a notice, or fails under CI=true.
 */
export function describeWithRedisCluster(
  name: string,
  body: (cluster: () => TestRedisCluster) => void,
): void {
  if (!REDIS_BINARY) {
    describeUnavailable(
      name,
      'needs redis-server to start a Redis Cluster',
      'No redis-server: cannot start a Redis Cluster',
      'needs redis-server and redis-cli (Debian: apt-get install redis-server).',
      () => body(() => undefined as unknown as TestRedisCluster),
    );
    return;
  }
  const binary = REDIS_BINARY;
  describe(name, () => {
    let cluster: TestRedisCluster;
    beforeAll(async () => {
      cluster = await TestRedisCluster.start(binary);
    }, 60_000);
    afterAll(async () => {
      await cluster?.stop();
    }, 30_000);
    body(() => cluster);
  });
}
