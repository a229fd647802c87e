import calculateSlot from 'cluster-key-slot';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { clusterNodeList } from '../src/config/app.config';
import { connectRedisCluster } from '../src/conversations/repositories/redis/redis-client';
import { RedisConversationRepository } from '../src/conversations/repositories/redis/redis-conversation.repository';
import { RedisRateLimitStore } from '../src/access/rate-limits/redis/redis-rate-limit.store';
import {
  conversationRepositoryContract,
  withPeer,
} from './contracts/conversation-repository.contract';
import { rateLimitStoreContract } from './contracts/rate-limit-store.contract';
import { openEventStream } from './utils/event-stream';
import { keysUnder } from './utils/redis';
import { describeWithRedisCluster, TestRedisCluster } from './utils/redis-cluster';
import { requestText, ServerProcess, spawnServer } from './utils/spawn-server';

const LIMITS = { maxConversations: 10_000, maxMessages: 10_000 };
let prefixes = 0;
const idOf = (res: { text: string }) => (JSON.parse(res.text) as { id: string }).id;
const newPrefix = () => `test:${randomUUID().slice(0, 8)}:${prefixes++}:`;

/** Every key under the prefix, on every master of the cluster, by master port. */
async function keysByMaster(cluster: TestRedisCluster, prefix: string) {
  const found = new Map<number, string[]>();
  for (const master of await cluster.masters()) {
    const client = master.client();
    try {
      found.set(master.port, await keysUnder(client, prefix));
    } finally {
      client.disconnect();
    }
  }
  return found;
}

describeWithRedisCluster('Redis Cluster store (3 masters, 3 replicas)', (cluster) => {
  jest.setTimeout(60_000);

  async function open(prefix = newPrefix(), options = {}) {
    const seeds = clusterNodeList(cluster().seeds) ?? [];
    const client = await connectRedisCluster(seeds, 2_000);
    return {
      prefix,
      repository: new RedisConversationRepository(client, prefix, cluster().seeds, options),
    };
  }

  conversationRepositoryContract('Redis Cluster', async () => {
    const { prefix, repository } = await open();
    // Another instance: a client of its own on the same keys.
    const { repository: peer } = await open(prefix);
    return withPeer(repository, peer, (handle) => handle.onApplicationShutdown());
  });

  rateLimitStoreContract('Redis Cluster', async () => {
    const { repository } = await open();
    return {
      store: new RedisRateLimitStore(repository.connection),
      teardown: () => repository.onApplicationShutdown(),
    };
  });

  it('spreads conversations over every master, and eviction leaves no key on any of them', async () => {
    const { prefix, repository } = await open();
    try {
      for (let i = 0; i < 60; i++) {
        const { id } = await repository.createConversation({
          id: randomUUID(),
          now: 1_000,
          ...LIMITS,
          idempotency: i % 2 ? { key: `k${i}`, fingerprint: 'f', ttlMs: 60_000 } : undefined,
        });
        const message = await repository.appendMessage(id, {
          id: randomUUID(),
          sender: 'agent',
          content: `hello ${i}`,
          timestamp: 1_000,
          now: 1_000,
          maxMessages: LIMITS.maxMessages,
          idempotency: { key: `post-${i}`, fingerprint: 'f', ttlMs: 60_000 },
        });
        if (i % 3 === 0) {
          await repository.deleteMessage(id, message.id, 1_000);
        }
      }
      const before = await keysByMaster(cluster(), prefix);
      expect(before.size).toBe(3);
      for (const keys of before.values()) {
        expect(keys.length).toBeGreaterThan(0);
      }
      expect(await repository.stats()).toEqual({ conversations: 60, messages: 40 });

      expect(await repository.evictInactive(2_000)).toBe(60);

      const after = [...(await keysByMaster(cluster(), prefix)).values()].flat();
      expect(after).toEqual([`${prefix}{meta}`]);
      expect(await repository.stats()).toEqual({ conversations: 0, messages: 0 });
    } finally {
      await repository.onApplicationShutdown();
    }
  });

  it('a create stopped between its steps leaves only an index entry, which the next sweep drops', async () => {
    const { prefix, repository } = await open();
    const admin = cluster().client();
    try {
      // The first step of a create (reservation and index entry), and then the process died.
      const orphan = randomUUID();
      const made = await repository.createConversation({ id: randomUUID(), now: 1_000, ...LIMITS });
      const buckets = Array.from({ length: 16 }, (_, b) => `${prefix}{activity:${b}}`);
      await admin.zadd(buckets[0], 1_000, orphan);
      await admin.hincrby(`${prefix}{meta}`, 'conversations', 1);

      expect(await repository.evictInactive(2_000)).toBe(1); // only the real one
      const left = [...(await keysByMaster(cluster(), prefix)).values()].flat();
      expect(left).toEqual([`${prefix}{meta}`]);
      expect(await admin.zscore(buckets[0], orphan)).toBeNull();
      expect(await repository.getConversation(made.id)).toBeNull();
    } finally {
      admin.disconnect();
      await repository.onApplicationShutdown();
    }
  });

  it('acknowledges a write once REDIS_WAIT_REPLICAS replicas have it, else 503 replication_timeout with the write standing', async () => {
    const { repository: one } = await open(newPrefix(), { waitReplicas: 1, waitTimeoutMs: 1_000 });
    const prefix = newPrefix();
    const { repository: two } = await open(prefix, { waitReplicas: 2, waitTimeoutMs: 200 });
    try {
      const { id } = await one.createConversation({ id: randomUUID(), now: 1_000, ...LIMITS });
      const message = await one.appendMessage(id, {
        id: randomUUID(),
        sender: 'agent',
        content: 'on a replica',
        timestamp: 1_000,
        now: 1_000,
        maxMessages: LIMITS.maxMessages,
      });
      expect(message.seq).toBe(1);

      // Each master has one replica: two cannot confirm. The create's write stands.
      const conversationId = randomUUID();
      await expect(
        two.createConversation({ id: conversationId, now: 1_000, ...LIMITS }),
      ).rejects.toMatchObject({ code: 'replication_timeout' });
      expect((await one.getConversation(conversationId))?.id).toBeUndefined(); // another prefix
      const idempotency = { key: randomUUID(), fingerprint: 'f', ttlMs: 60_000 };
      const keyedId = randomUUID();
      await two
        .createConversation({ id: keyedId, now: 1_000, ...LIMITS, idempotency })
        .catch(() => undefined);
      const post = () =>
        two.appendMessage(keyedId, {
          id: randomUUID(),
          sender: 'agent',
          content: 'maybe',
          timestamp: 1_000,
          now: 1_000,
          maxMessages: LIMITS.maxMessages,
          idempotency,
        });
      await expect(post()).rejects.toMatchObject({ code: 'replication_timeout' });
      await expect(post()).rejects.toMatchObject({ code: 'replication_timeout' });
      expect((await two.getConversation(keyedId))?.messageCount).toBe(1);
    } finally {
      await one.onApplicationShutdown();
      await two.onApplicationShutdown();
    }
  });
});

describeWithRedisCluster('Redis Cluster: two instances (one WORKERS=2)', (cluster) => {
  jest.setTimeout(90_000);
  let servers: ServerProcess[] = [];

  beforeAll(async () => {
    const env = {
      STORE: 'redis',
      REDIS_CLUSTER_NODES: cluster().seeds,
      REDIS_KEY_PREFIX: newPrefix(),
    };
    servers = await Promise.all([
      spawnServer({ ...env, WORKERS: '2' }),
      spawnServer({ ...env, WORKERS: '0' }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
  }, 30_000);

  it('400 concurrent posts across both instances take seq 1..400, and a stream on each sees them all in order', async () => {
    const created = await requestText(servers[0].baseUrl, 'POST', '/api/conversations');
    const { id } = JSON.parse(created.text) as { id: string };
    const streams = await Promise.all(
      servers.map((server) => openEventStream(server.baseUrl, `/api/conversations/${id}/events`)),
    );
    try {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
      const posted = await Promise.all(
        Array.from({ length: 400 }, (_, i) =>
          requestText(servers[i % 2].baseUrl, 'POST', `/api/conversations/${id}/messages`, {
            body: { sender: 'customer', content: `m${i}` },
            agent,
          }),
        ),
      );
      agent.destroy();
      expect(posted.map((res) => res.status)).toEqual(Array(400).fill(201));
      const seqs = posted.map((res) => (JSON.parse(res.text) as { seq: number }).seq);
      expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
      for (const stream of streams) {
        const events = await stream.waitForEvents(400, 10_000);
        expect(events.map((event) => Number(event.id))).toEqual(
          Array.from({ length: 400 }, (_, i) => i + 1),
        );
      }
    } finally {
      streams.forEach((stream) => stream.close());
    }
  });

  it('starts with a clear error when the cluster cannot be reached, naming REDIS_CLUSTER_NODES', async () => {
    const server = await spawnServer(
      {
        STORE: 'redis',
        REDIS_CLUSTER_NODES: 'redis://user:secret-password@127.0.0.1:1',
        WORKERS: '0',
        STORE_TIMEOUT_MS: '500',
      },
      { waitUntilReady: false },
    );
    const { code } = await server.exited;
    expect(code).toBe(1);
    expect(server.output()).toMatch(
      /Cannot reach the Redis Cluster at 127\.0\.0\.1:1 \(REDIS_CLUSTER_NODES\)/,
    );
    expect(server.output()).not.toContain('secret-password');
  });
});

describeWithRedisCluster(
  'Redis Cluster: a master SIGKILLed under load (REDIS_WAIT_REPLICAS=1)',
  (cluster) => {
    jest.setTimeout(120_000);
    const prefix = newPrefix();
    let server: ServerProcess;

    beforeAll(async () => {
      server = await spawnServer({
        STORE: 'redis',
        REDIS_CLUSTER_NODES: cluster().seeds,
        REDIS_KEY_PREFIX: prefix,
        REDIS_WAIT_REPLICAS: '1',
        REDIS_WAIT_TIMEOUT_MS: '500',
        STORE_TIMEOUT_MS: '1500',
        WORKERS: '2',
      });
    }, 60_000);

    afterAll(async () => {
      await server?.stop();
    }, 30_000);

    it('loses no acknowledged write, answers only 201 or 503, keeps the other shards writing, and heals when the node is back', async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
      const call = (method: string, path: string, body?: unknown) =>
        requestText(server.baseUrl, method, path, { body, agent }).catch(() => ({
          status: 0,
          headers: {},
          text: '',
        }));
      const ids: string[] = [];
      for (let i = 0; i < 24; i++) {
        ids.push(idOf(await call('POST', '/api/conversations')));
      }
      // Which master holds each conversation, from the cluster's own slot map.
      const admin = cluster().client();
      const slots = (await admin.cluster('SLOTS')) as unknown as [
        number,
        number,
        [string, number],
      ][];
      admin.disconnect();
      const masterOf = (id: string) => {
        const slot = calculateSlot(`${prefix}{${id}}:conv`);
        return slots.find(([from, to]) => slot >= from && slot <= to)?.[2][1];
      };
      const victimPort = masterOf(ids[0]);
      const victim = cluster().nodes.find((node) => node.port === victimPort);
      if (!victim) {
        throw new Error('no master found for the first conversation');
      }
      const onVictim = new Set(ids.filter((id) => masterOf(id) === victimPort));
      expect(onVictim.size).toBeGreaterThan(0);
      expect(onVictim.size).toBeLessThan(ids.length);

      type Outcome = {
        id: string;
        status: number;
        at: number;
        message?: { id: string; seq: number };
      };
      const outcomes: Outcome[] = [];
      const started = Date.now();
      let killedAt = Infinity;
      let restartedAt = Infinity;
      let healedAt = Infinity;
      let stop = false;
      const lanes = Array.from({ length: 12 }, async (_, lane) => {
        for (let n = 0; !stop; n++) {
          const id = ids[(lane + n * 12) % ids.length];
          const res = await call('POST', `/api/conversations/${id}/messages`, {
            sender: 'agent',
            content: `lane ${lane} #${n}`,
          });
          const at = Date.now();
          outcomes.push({
            id,
            status: res.status,
            at,
            message: res.status === 201 ? (JSON.parse(res.text) as Outcome['message']) : undefined,
          });
          if (res.status === 201 && onVictim.has(id) && at > restartedAt && at < healedAt) {
            healedAt = at;
          }
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await victim.kill();
      killedAt = Date.now();
      // The replica takes over after cluster-node-timeout; it has no replica of its own, so
      // with REDIS_WAIT_REPLICAS=1 its shard refuses writes until the old node rejoins.
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      await victim.start();
      restartedAt = Date.now();
      const deadline = restartedAt + 10_000;
      while (healedAt === Infinity && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      stop = true;
      await Promise.all(lanes);

      // Only 201 or 503: never a 500, never a hang (0 would be a failed connection).
      const statuses = new Set(outcomes.map((outcome) => outcome.status));
      expect([...statuses].sort()).toEqual(
        [...statuses].filter((s) => s === 201 || s === 503).sort(),
      );
      expect(outcomes.filter((o) => o.at > killedAt && o.status === 503).length).toBeGreaterThan(0);
      // The other shards kept accepting writes while the victim's failed over.
      const others = outcomes.filter(
        (o) => !onVictim.has(o.id) && o.at > killedAt && o.at < restartedAt,
      );
      expect(others.length).toBeGreaterThan(20);
      expect(others.filter((o) => o.status !== 201)).toEqual([]);
      // Every shard accepts writes within 10 s of the node's return.
      expect(healedAt - restartedAt).toBeLessThan(10_000);

      // No acknowledged write is lost, and no seq is taken twice.
      await cluster().waitUntilOk();
      for (const id of ids) {
        const history = await call('GET', `/api/conversations/${id}`);
        expect(history.status).toBe(200);
        const { messages } = JSON.parse(history.text) as {
          messages: { id: string; seq: number }[];
        };
        const stored = new Set(messages.map((message) => message.id));
        const acknowledged = outcomes.filter((o) => o.id === id && o.message);
        expect(acknowledged.filter((o) => !stored.has(o.message?.id ?? ''))).toEqual([]);
        const seqs = messages.map((message) => message.seq);
        expect(new Set(seqs).size).toBe(seqs.length);
      }
      agent.destroy();
      expect(Date.now() - started).toBeLessThan(60_000);
      if (process.env.FAILOVER_REPORT) {
        const refused = outcomes.filter((o) => o.at > killedAt && o.status === 503);
        const firstAfterKill = outcomes.find(
          (o) => onVictim.has(o.id) && o.at > killedAt && o.status === 201,
        );
        console.log(
          `failover: ${outcomes.length} posts, ${outcomes.filter((o) => o.status === 201).length} acknowledged, ` +
            `${refused.length} answered 503 after the kill (all on the killed shard: ${refused.every((o) => onVictim.has(o.id))}); ` +
            `first 201 on that shard ${(firstAfterKill?.at ?? NaN) - killedAt} ms after the kill; ` +
            `healed ${healedAt - restartedAt} ms after the node's restart`,
        );
      }
    });

    it('is not ready while the cluster state is not ok, and ready again once it is', async () => {
      const ready = () => requestText(server.baseUrl, 'GET', '/health/ready');
      expect((await ready()).status).toBe(200);
      // Two of three masters gone: the last one is in the minority and says cluster_state:fail.
      const victims = (await cluster().masters()).slice(0, 2);
      await Promise.all(victims.map((node) => node.kill()));
      const deadline = Date.now() + 15_000;
      let answer = await ready();
      while (answer.status === 200 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        answer = await ready();
      }
      expect(answer.status).toBe(503);
      expect(JSON.parse(answer.text)).toMatchObject({
        status: 'error',
        error: { store: { kind: 'redis-cluster', status: 'down' } },
      });
      await Promise.all(victims.map((node) => node.start()));
      await cluster().waitUntilOk(30_000, false);
      const back = Date.now() + 15_000;
      while ((answer = await ready()).status !== 200 && Date.now() < back) {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(answer.status).toBe(200);
    });
  },
);
