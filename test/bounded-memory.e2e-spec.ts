import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { describeWithRedisBinary, PrivateRedis } from './utils/redis';
import {
  HEAP_PROBE_OPTIONS,
  heapAfterGc,
  requestText,
  ServerProcess,
  spawnServer,
} from './utils/spawn-server';

const BIG = 'x'.repeat(9_990);
/** How long a flood's keys are kept (IDEMPOTENCY_TTL_MS). */
const KEY_TTL_MS = 1_000;
const idOf = (res: { text: string }) => (JSON.parse(res.text) as { id: string }).id;

/** A gauge's value from GET /metrics (the whole cluster's, in cluster mode). */
async function gauge(server: ServerProcess, name: string): Promise<number> {
  const metrics = (await requestText(server.baseUrl, 'GET', '/metrics')).text;
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(metrics)?.[1]);
}

interface Flooded {
  ids: string[];
  /** Every acknowledged message, by conversation. */
  acknowledged: Map<string, string[]>;
  statuses: Set<number>;
  refusal: { status: number; headers: http.IncomingHttpHeaders; text: string };
}

/**
 * A keyed post of a large message. A connection that drops (a kept-alive socket the server
 * closed as the next request went out) is retried with the same key, which the API makes
 * safe; a server that died fails the test with its last words.
 */
async function postSafely(server: ServerProcess, path: string, agent: http.Agent) {
  const key = randomUUID();
  for (let attempt = 0; ; attempt++) {
    try {
      return await requestText(server.baseUrl, 'POST', path, {
        body: { sender: 'customer', content: BIG },
        headers: { 'Idempotency-Key': key },
        agent,
      });
    } catch (error) {
      if (server.child.exitCode !== null || server.child.signalCode !== null || attempt > 2) {
        throw new Error(
          `${String(error)}; server exit ${server.child.exitCode ?? server.child.signalCode}; ` +
            `its last output:\n${server.output().slice(-2_000)}`,
        );
      }
    }
  }
}

/**
 * Eight clients post 10,000-character messages into 20 conversations until each is refused
 * (or `maxPosts` in all), as in the report that crashed the primary.
 */
async function flood(server: ServerProcess, maxPosts = 40_000): Promise<Flooded> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) {
    ids.push(idOf(await requestText(server.baseUrl, 'POST', '/api/conversations', { agent })));
  }
  const acknowledged = new Map<string, string[]>(ids.map((id) => [id, []]));
  const statuses = new Set<number>();
  let refusal: Flooded['refusal'] | undefined;
  let posts = 0;
  await Promise.all(
    Array.from({ length: 8 }, async (_, lane) => {
      for (let n = 0; !refusal && posts < maxPosts; n++) {
        posts++;
        const id = ids[(lane + n * 8) % ids.length];
        const res = await postSafely(server, `/api/conversations/${id}/messages`, agent);
        statuses.add(res.status);
        if (res.status === 201) {
          acknowledged.get(id)?.push(idOf(res));
        } else {
          refusal = res;
        }
      }
    }),
  );
  agent.destroy();
  if (!refusal) {
    throw new Error(`no refusal after ${posts} posts`);
  }
  return { ids, acknowledged, statuses, refusal };
}

/** After a flood: the refusal, nothing lost, the server alive, and room again after deletes. */
async function expectBoundedFlood(server: ServerProcess): Promise<void> {
  try {
    await boundedFlood(server);
  } catch (error) {
    // Say whether the server is still there, and what it said last.
    throw new Error(
      `${String(error)}; server exit ${server.child.exitCode ?? server.child.signalCode}; ` +
        `its last output:\n${server.output().slice(-3_000)}`,
    );
  }
}

async function boundedFlood(server: ServerProcess): Promise<void> {
  const { ids, acknowledged, statuses, refusal } = await flood(server);
  expect([...statuses].sort()).toEqual([201, 507]);
  expect(refusal.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(JSON.parse(refusal.text)).toMatchObject({ status: 507, code: 'store_full' });
  expect(Number(refusal.headers['retry-after'])).toBeGreaterThan(0);
  expect((await requestText(server.baseUrl, 'GET', '/health/live')).status).toBe(200);
  expect((await requestText(server.baseUrl, 'GET', '/health/ready')).status).toBe(200);

  // Every acknowledged message is still there.
  let total = 0;
  for (const id of ids) {
    const history = await requestText(server.baseUrl, 'GET', `/api/conversations/${id}`);
    const stored = (JSON.parse(history.text) as { messages: { id: string }[] }).messages.map(
      (message) => message.id,
    );
    expect(stored).toEqual(expect.arrayContaining(acknowledged.get(id) ?? []));
    expect(stored).toHaveLength(acknowledged.get(id)?.length ?? 0);
    total += stored.length;
  }
  expect(total).toBeGreaterThan(100);

  // Still full once the keys have expired and a post has let go of them (a few posts fit in
  // what they gave back), then room once messages are deleted and nothing holds their text:
  // these five were posted long before the last EVENT_REPLAY_LIMIT changes.
  const path = `/api/conversations/${ids[0]}/messages`;
  const post = () =>
    requestText(server.baseUrl, 'POST', path, { body: { sender: 'agent', content: BIG } });
  await new Promise((resolve) => setTimeout(resolve, KEY_TTL_MS));
  let status = 201;
  for (let tries = 0; tries < 20 && status === 201; tries++) {
    status = (await post()).status;
  }
  expect(status).toBe(507);
  for (const messageId of (acknowledged.get(ids[0]) ?? []).slice(0, 5)) {
    const deleted = await requestText(server.baseUrl, 'DELETE', `${path}/${messageId}`);
    expect(deleted.status).toBe(200);
  }
  const again = await post();
  expect(again.status).toBe(201);
}

describe('bounded memory: a flood is refused with 507, never a crash', () => {
  jest.setTimeout(120_000);

  it('WORKERS=0 with a 128 MB heap and the default budget (half the heap)', async () => {
    const server = await spawnServer({
      WORKERS: '0',
      NODE_OPTIONS: '--max-old-space-size=128',
      EVENT_REPLAY_LIMIT: '10',
      IDEMPOTENCY_TTL_MS: String(KEY_TTL_MS),
    });
    try {
      await expectBoundedFlood(server);
      // The budget and what it holds, as the metrics say.
      const budget = await gauge(server, 'chat_store_bytes_budget');
      expect(budget).toBeGreaterThan(40_000_000);
      expect(budget).toBeLessThan(100_000_000);
      expect(await gauge(server, 'chat_store_bytes')).toBeLessThanOrEqual(budget);
      expect(server.lines(/over 90% of MAX_STORE_BYTES/)).toHaveLength(1);
    } finally {
      await server.stop();
    }
  });

  it('WORKERS=2, the primary owning the budget (MAX_STORE_BYTES=20000000)', async () => {
    const server = await spawnServer({
      WORKERS: '2',
      MAX_STORE_BYTES: '20000000',
      EVENT_REPLAY_LIMIT: '10',
      IDEMPOTENCY_TTL_MS: String(KEY_TTL_MS),
    });
    try {
      await expectBoundedFlood(server);
    } finally {
      await server.stop();
    }
  });
});

describe('bounded memory: the budget counts what deleted messages leave behind', () => {
  jest.setTimeout(180_000);
  const ROUNDS = 80;
  const HUGE = 'x'.repeat(1_000_000);

  it('WORKERS=2, 128 MB heap: 1 MB post-and-delete rounds get 507 past the budget, the primary lives, nothing acknowledged is lost, and chat_store_bytes is at least 80% of the heap the store holds', async () => {
    const server = await spawnServer({
      WORKERS: '2',
      NODE_OPTIONS: `--max-old-space-size=128 --max-semi-space-size=16 ${HEAP_PROBE_OPTIONS}`,
      MAX_MESSAGE_LENGTH: '1000000',
      BODY_LIMIT: '4mb',
    });
    const call = async (method: string, path: string, body?: unknown, key?: string) => {
      try {
        return await requestText(server.baseUrl, method, path, {
          body,
          headers: key ? { 'Idempotency-Key': key } : {},
        });
      } catch (error) {
        throw new Error(
          `${method} ${path}: ${String(error)}; server exit ${server.child.exitCode ?? server.child.signalCode}; ` +
            `its last output:\n${server.output().slice(-3_000)}`,
        );
      }
    };
    try {
      const conversation = idOf(await call('POST', '/api/conversations'));
      const path = `/api/conversations/${conversation}/messages`;
      // Messages that stay: each must still be there at the end.
      const kept: string[] = [];
      for (const sender of ['customer', 'agent', 'customer']) {
        kept.push(idOf(await call('POST', path, { sender, content: `kept by ${sender}` })));
      }
      // One small round first, so that the baseline has every code path warm.
      const warm = idOf(await call('POST', path, { sender: 'agent', content: 'warm' }));
      expect((await call('DELETE', `${path}/${warm}`)).status).toBe(200);
      const heapBefore = await heapAfterGc(server);
      const countedBefore = await gauge(server, 'chat_store_bytes');

      const statuses: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        // Every other post is keyed: a kept key holds the message it answers with.
        const key = round % 2 === 0 ? randomUUID() : undefined;
        const posted = await call('POST', path, { sender: 'customer', content: HUGE }, key);
        statuses.push(posted.status);
        if (posted.status === 201) {
          expect((await call('DELETE', `${path}/${idOf(posted)}`)).status).toBe(200);
        } else {
          expect(posted.status).toBe(507);
          expect(JSON.parse(posted.text)).toMatchObject({ code: 'store_full' });
        }
      }
      const held = (await heapAfterGc(server)) - heapBefore;
      const counted = (await gauge(server, 'chat_store_bytes')) - countedBefore;
      // The figures, for whoever reads the run.
      console.log(
        `${statuses.filter((status) => status === 201).length} of ${ROUNDS} rounds stored; ` +
          `chat_store_bytes grew ${counted} bytes, the primary's heap after GC ${held} bytes`,
      );
      expect(server.child.exitCode ?? server.child.signalCode).toBeNull();
      expect((await call('GET', '/health/ready')).status).toBe(200);
      const history = JSON.parse(
        (await call('GET', `/api/conversations/${conversation}`)).text,
      ) as {
        messages: { id: string }[];
      };
      expect(history.messages.map((message) => message.id)).toEqual(kept);
      expect(new Set(statuses)).toEqual(new Set([201, 507]));
      expect(counted).toBeGreaterThanOrEqual(0.8 * held);
    } finally {
      await server.stop();
    }
  });
});

describeWithRedisBinary('bounded memory on Redis (maxmemory 16mb)', (binary) => {
  jest.setTimeout(120_000);

  it('answers writes past maxmemory with 507 under noeviction, never 500', async () => {
    const redis = await PrivateRedis.start(binary, [
      '--maxmemory',
      '16mb',
      '--maxmemory-policy',
      'noeviction',
    ]);
    const server = await spawnServer({
      STORE: 'redis',
      REDIS_URL: redis.url,
      WORKERS: '0',
    });
    try {
      const { statuses, refusal } = await flood(server);
      expect([...statuses].sort()).toEqual([201, 507]);
      expect(JSON.parse(refusal.text)).toMatchObject({ status: 507, code: 'store_full' });
      expect((await requestText(server.baseUrl, 'GET', '/health/live')).status).toBe(200);
      expect(server.lines(/maxmemory-policy/)).toEqual([]);
    } finally {
      await server.stop();
      await redis.stop();
    }
  });

  it('warns at start when Redis may evict keys (allkeys-lru)', async () => {
    const redis = await PrivateRedis.start(binary, [
      '--maxmemory',
      '16mb',
      '--maxmemory-policy',
      'allkeys-lru',
    ]);
    const server = await spawnServer({ STORE: 'redis', REDIS_URL: redis.url, WORKERS: '2' });
    try {
      expect(
        server.lines(/has maxmemory-policy allkeys-lru: when it fills up it may silently delete/),
      ).toHaveLength(1);
    } finally {
      await server.stop();
      await redis.stop();
    }
  });
});
