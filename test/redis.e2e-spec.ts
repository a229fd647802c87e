import { describeWithRedis, describeWithRedisBinary, PrivateRedis } from './utils/redis';
import { requestJson, requestText, ServerProcess, spawnServer } from './utils/spawn-server';

interface Conversation {
  id: string;
  messageCount: number;
  messages: { id: string; seq: number; content: string }[];
}

const createOn = async (server: ServerProcess): Promise<string> => {
  const res = await requestJson<{ id: string }>(server.baseUrl, 'POST', '/api/conversations');
  expect(res.status).toBe(201);
  return res.body.id;
};

const postOn = (server: ServerProcess, id: string, content: string) =>
  requestJson<{ id: string; seq: number }>(
    server.baseUrl,
    'POST',
    `/api/conversations/${id}/messages`,
    { sender: 'customer', content },
  );

const read = (server: ServerProcess, id: string) =>
  requestJson<Conversation>(server.baseUrl, 'GET', `/api/conversations/${id}`);

describeWithRedis('STORE=redis: two instances sharing one Redis', (redis) => {
  jest.setTimeout(60_000);

  /** Two instances started before the enclosing describe's tests, stopped after. */
  function useTwoInstances(env: () => [Record<string, string>, Record<string, string>]) {
    const servers: ServerProcess[] = [];
    beforeAll(async () => {
      servers.push(...(await Promise.all(env().map((e) => spawnServer(e)))));
    });
    afterAll(async () => {
      await Promise.all(servers.map((server) => server.stop()));
    });
    return () => servers as [ServerProcess, ServerProcess];
  }

  describe('one store for both', () => {
    // One instance in cluster mode (its workers talk to Redis directly), one single process.
    const servers = useTwoInstances(() => {
      const env = { STORE: 'redis', REDIS_URL: redis().url, REDIS_KEY_PREFIX: redis().newPrefix() };
      return [
        { ...env, WORKERS: '2' },
        { ...env, WORKERS: '0' },
      ];
    });

    it.each([
      ['A', 'B'],
      ['B', 'A'],
    ])('creates on %s; reads, posts and deletes on %s', async (from, to) => {
      const [a, b] = servers();
      const [first, second] = from === 'A' ? [a, b] : [b, a];
      const id = await createOn(first);

      expect((await read(second, id)).body).toMatchObject({ id, messageCount: 0, messages: [] });
      const posted = await postOn(second, id, `hello from ${to}`);
      expect(posted.status).toBe(201);
      expect(posted.body.seq).toBe(1);
      expect((await read(first, id)).body.messages).toEqual([
        expect.objectContaining({ id: posted.body.id, seq: 1, content: `hello from ${to}` }),
      ]);

      const deleted = await requestJson(
        second.baseUrl,
        'DELETE',
        `/api/conversations/${id}/messages/${posted.body.id}`,
      );
      expect(deleted.status).toBe(200);
      expect((await read(first, id)).body).toMatchObject({ messageCount: 0, messages: [] });
    });

    it('keeps seq 1..400 for 400 concurrent posts split across both instances', async () => {
      const [a, b] = servers();
      const id = await createOn(a);
      const responses = await Promise.all(
        Array.from({ length: 400 }, (_, i) => postOn(i % 2 === 0 ? a : b, id, `m${i}`)),
      );

      expect(responses.map((r) => r.status)).toEqual(Array(400).fill(201));
      const seqs = responses.map((r) => r.body.seq).sort((x, y) => x - y);
      expect(seqs).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
      const history = (await read(b, id)).body;
      expect(history.messageCount).toBe(400);
      expect(new Set(history.messages.map((m) => m.content)).size).toBe(400);
    });

    it('reports ready with the Redis store from both instances', async () => {
      for (const server of servers()) {
        const ready = await requestJson(server.baseUrl, 'GET', '/health/ready');
        expect(ready.status).toBe(200);
        expect(ready.body).toMatchObject({ details: { store: { status: 'up', kind: 'redis' } } });
      }
    });
  });

  describe('limits across two instances', () => {
    const servers = useTwoInstances(() => {
      const env = {
        STORE: 'redis',
        REDIS_URL: redis().url,
        REDIS_KEY_PREFIX: redis().newPrefix(),
        WORKERS: '0',
        MAX_CONVERSATIONS: '10',
        MAX_MESSAGES_PER_CONVERSATION: '10',
      };
      return [env, env];
    });

    it('holds MAX_MESSAGES_PER_CONVERSATION and MAX_CONVERSATIONS under concurrent writes', async () => {
      const [a, b] = servers();
      const id = await createOn(a);
      const posts = await Promise.all(
        Array.from({ length: 30 }, (_, i) => postOn(i % 2 === 0 ? a : b, id, `m${i}`)),
      );
      expect(posts.filter((r) => r.status === 201)).toHaveLength(10);
      expect(posts.filter((r) => r.status === 409)).toHaveLength(20);

      const creates = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          requestJson(i % 2 === 0 ? a.baseUrl : b.baseUrl, 'POST', '/api/conversations'),
        ),
      );
      expect(creates.filter((r) => r.status === 201)).toHaveLength(9);
      expect(creates.filter((r) => r.status === 503)).toHaveLength(21);
      expect(creates.find((r) => r.status === 503)?.body).toMatchObject({
        code: 'capacity_exceeded',
      });
    });
  });

  describe('eviction across two instances', () => {
    let prefix: string;
    const servers = useTwoInstances(() => {
      prefix = redis().newPrefix();
      const env = {
        STORE: 'redis',
        REDIS_URL: redis().url,
        REDIS_KEY_PREFIX: prefix,
        WORKERS: '0',
        CONVERSATION_TTL_MS: '1000',
        EVICTION_CRON: '* * * * * *',
      };
      return [env, env];
    });

    it('evicts each inactive conversation once, and leaves none of its keys', async () => {
      const [a, b] = servers();
      const ids = await Promise.all(
        Array.from({ length: 20 }, (_, i) => createOn(i % 2 === 0 ? a : b)),
      );
      // What stays is the store's own bookkeeping: its counters, and the webhooks' outbox
      // (an empty stream holding its consumer group) and reconcile mark. No conversation's key.
      const kept = [`${prefix}{meta}`, `${prefix}{meta}:reconciled`, `${prefix}{wh}:outbox`];
      const ofConversations = async () =>
        (await redis().keys(prefix)).filter((key) => !kept.includes(key));
      const deadline = Date.now() + 10_000;
      while ((await ofConversations()).length > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }

      expect(await ofConversations()).toEqual([]);
      expect(await redis().keys(prefix)).toContain(`${prefix}{meta}`);
      for (const id of ids) {
        expect((await read(a, id)).status).toBe(404);
      }
      const evicted = [a, b]
        .flatMap((server) => server.lines(/Eviction sweep removed \d+/))
        .map((line) => Number(/removed (\d+)/.exec(line)?.[1]))
        .reduce((sum, n) => sum + n, 0);
      expect(evicted).toBe(20);
    });
  });

  describeWithRedisBinary('Redis stopped and started again', (binary) => {
    let own: PrivateRedis;
    let server: ServerProcess;

    beforeAll(async () => {
      own = await PrivateRedis.start(binary);
      server = await spawnServer({ STORE: 'redis', REDIS_URL: own.url, WORKERS: '0' });
    });

    afterAll(async () => {
      await server?.stop();
      await own?.stop();
    });

    it('answers 503 within a second while Redis is down, and recovers by itself', async () => {
      const id = await createOn(server);
      await own.stop();

      for (const request of [
        () => requestJson(server.baseUrl, 'POST', '/api/conversations'),
        () => read(server, id),
        () => postOn(server, id, 'lost?'),
      ]) {
        const started = Date.now();
        const res = await request();
        expect(Date.now() - started).toBeLessThan(1_000);
        expect(res.status).toBe(503);
        expect(res.body).toMatchObject({ code: 'store_unavailable' });
      }
      const ready = await requestJson(server.baseUrl, 'GET', '/health/ready');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({
        error: {
          store: {
            status: 'down',
            kind: 'redis',
            message: expect.stringContaining('Redis at redis://127.0.0.1'),
          },
        },
      });

      await own.start();
      const deadline = Date.now() + 5_000;
      let created = 0;
      while (created !== 201 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        created = (await requestJson(server.baseUrl, 'POST', '/api/conversations')).status;
      }
      expect(created).toBe(201);
      expect((await requestJson(server.baseUrl, 'GET', '/health/ready')).status).toBe(200);
    });
  });

  describe('start-up', () => {
    it('stops with a clear error when Redis cannot be reached', async () => {
      const unreachable = 'redis://127.0.0.1:1';
      const server = await spawnServer(
        { STORE: 'redis', REDIS_URL: unreachable, WORKERS: '0' },
        { waitUntilReady: false },
      );
      const { code } = await server.exited;
      expect(code).toBe(1);
      expect(server.output()).toContain('Cannot reach Redis at redis://127.0.0.1:1 (REDIS_URL)');
    });

    it('refuses a malformed REDIS_URL, naming it', async () => {
      const server = await spawnServer(
        { STORE: 'redis', REDIS_URL: 'localhost:6379', WORKERS: '0' },
        { waitUntilReady: false },
      );
      const { code } = await server.exited;
      expect(code).toBe(1);
      expect(server.output()).toMatch(/Invalid configuration:\n\s+- REDIS_URL /);
    });

    it('never prints the password of REDIS_URL', async () => {
      const server = await spawnServer(
        { STORE: 'redis', REDIS_URL: 'redis://user:s3cret@127.0.0.1:1', WORKERS: '0' },
        { waitUntilReady: false },
      );
      await server.exited;
      expect(server.output()).toContain('Cannot reach Redis at redis://127.0.0.1:1');
      expect(server.output()).not.toContain('s3cret');
    });
  });

  it('reads Prometheus gauges from Redis', async () => {
    const server = await spawnServer({
      STORE: 'redis',
      REDIS_URL: redis().url,
      REDIS_KEY_PREFIX: redis().newPrefix(),
      WORKERS: '2',
    });
    try {
      const id = await createOn(server);
      await postOn(server, id, 'one');
      await postOn(server, id, 'two');
      // Each process sends its message-count changes every 200 ms (one HINCRBY, not one per
      // post), and sends what it holds before it answers a scrape: the worker that posted may
      // not be the one scraped, so the gauge is exact within 200 ms.
      await new Promise((resolve) => setTimeout(resolve, 250));
      const metrics = await requestText(server.baseUrl, 'GET', '/metrics');
      expect(metrics.text).toMatch(/^chat_conversations_stored 1$/m);
      expect(metrics.text).toMatch(/^chat_messages_stored 2$/m);
    } finally {
      await server.stop();
    }
  });
});
