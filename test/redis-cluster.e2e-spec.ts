import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { clusterNodeList } from '../src/config/app.config';
import { connectRedisCluster } from '../src/conversations/repositories/redis-client';
import { RedisConversationRepository } from '../src/conversations/repositories/redis-conversation.repository';
import { conversationRepositoryContract } from './contracts/conversation-repository.contract';
import { openEventStream } from './utils/event-stream';
import { describeWithRedisCluster, TestRedisCluster } from './utils/redis-cluster';
import { requestText, ServerProcess, spawnServer } from './utils/spawn-server';

const LIMITS = { maxConversations: 10_000, maxMessages: 10_000 };
let prefixes = 0;
const newPrefix = () => `test:${randomUUID().slice(0, 8)}:${prefixes++}:`;

/** Every key under the prefix, on every master of the cluster, by master port. */
async function keysByMaster(cluster: TestRedisCluster, prefix: string) {
  const found = new Map<number, string[]>();
  for (const master of await cluster.masters()) {
    const client = master.client();
    try {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      found.set(master.port, keys);
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
    const { repository } = await open();
    return { repository, teardown: () => repository.onApplicationShutdown() };
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
      /Cannot use the Redis Cluster at 127\.0\.0\.1:1 \(REDIS_CLUSTER_NODES\)/,
    );
    expect(server.output()).not.toContain('secret-password');
  });
});
