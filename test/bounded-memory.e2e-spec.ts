import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { openEventStream } from './utils/event-stream';
import { PrivateRedis, REDIS_BINARY } from './utils/redis';
import { requestText, ServerProcess, spawnServer, useServer } from './utils/spawn-server';

const BIG = 'x'.repeat(9_990);
const idOf = (res: { text: string }) => (JSON.parse(res.text) as { id: string }).id;

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

  // Still full, then room once messages are deleted.
  const path = `/api/conversations/${ids[0]}/messages`;
  expect(
    (await requestText(server.baseUrl, 'POST', path, { body: { sender: 'agent', content: BIG } }))
      .status,
  ).toBe(507);
  for (const messageId of (acknowledged.get(ids[0]) ?? []).slice(0, 5)) {
    const deleted = await requestText(server.baseUrl, 'DELETE', `${path}/${messageId}`);
    expect(deleted.status).toBe(200);
  }
  const again = await requestText(server.baseUrl, 'POST', path, {
    body: { sender: 'agent', content: BIG },
  });
  expect(again.status).toBe(201);
}

describe('bounded memory: a flood is refused with 507, never a crash', () => {
  jest.setTimeout(120_000);

  it('WORKERS=0 with a 128 MB heap and the default budget (half the heap)', async () => {
    const server = await spawnServer({
      WORKERS: '0',
      NODE_OPTIONS: '--max-old-space-size=128',
    });
    try {
      await expectBoundedFlood(server);
      // The budget and what it holds, as the metrics say.
      const metrics = (await requestText(server.baseUrl, 'GET', '/metrics')).text;
      const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(metrics)?.[1]);
      expect(gauge('chat_store_bytes_budget')).toBeGreaterThan(40_000_000);
      expect(gauge('chat_store_bytes_budget')).toBeLessThan(100_000_000);
      expect(gauge('chat_store_bytes')).toBeLessThanOrEqual(gauge('chat_store_bytes_budget'));
      expect(server.lines(/over 90% of MAX_STORE_BYTES/)).toHaveLength(1);
    } finally {
      await server.stop();
    }
  });

  it('WORKERS=2, the primary owning the budget (MAX_STORE_BYTES=20000000)', async () => {
    const server = await spawnServer({
      WORKERS: '2',
      MAX_STORE_BYTES: '20000000',
    });
    try {
      await expectBoundedFlood(server);
    } finally {
      await server.stop();
    }
  });
});

(REDIS_BINARY ? describe : describe.skip)('bounded memory on Redis (maxmemory 16mb)', () => {
  jest.setTimeout(120_000);

  it('answers writes past maxmemory with 507 under noeviction, never 500', async () => {
    const redis = await PrivateRedis.start(REDIS_BINARY as string, [
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
    const redis = await PrivateRedis.start(REDIS_BINARY as string, [
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

describe('bounded event streams (WORKERS=0, 3 per client, 5 in all)', () => {
  jest.setTimeout(60_000);
  const KEY_A = 'client-a-key-0123456789';
  const KEY_B = 'client-b-key-0123456789';
  const server = useServer({
    WORKERS: '0',
    API_KEYS: `${KEY_A},${KEY_B}`,
    MAX_EVENT_STREAMS_PER_CLIENT: '3',
    MAX_EVENT_STREAMS: '5',
  });
  const as = (key: string) => ({ Authorization: `Bearer ${key}` });

  it('refuses a client past its share with 429 while another gets its stream, and frees places as streams close', async () => {
    const created = await requestText(server().baseUrl, 'POST', '/api/conversations', {
      headers: as(KEY_A),
    });
    const path = `/api/conversations/${idOf(created)}/events`;
    const mine = await Promise.all(
      [1, 2, 3].map(() => openEventStream(server().baseUrl, path, as(KEY_A))),
    );
    expect(mine.map((stream) => stream.status)).toEqual([200, 200, 200]);

    const extra = await openEventStream(server().baseUrl, path, as(KEY_A));
    expect(extra.status).toBe(429);
    expect(JSON.parse(extra.body())).toMatchObject({ code: 'too_many_streams' });
    expect(Number(extra.headers['retry-after'])).toBeGreaterThan(0);

    const theirs = await Promise.all(
      [1, 2].map(() => openEventStream(server().baseUrl, path, as(KEY_B))),
    );
    expect(theirs.map((stream) => stream.status)).toEqual([200, 200]);
    // Five open in all: the process is full, for everyone.
    const sixth = await openEventStream(server().baseUrl, path, as(KEY_B));
    expect(sixth.status).toBe(503);
    expect(JSON.parse(sixth.body())).toMatchObject({ code: 'stream_capacity_exceeded' });

    // A closed stream frees its place at once; so does a client that vanished.
    mine[0].close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const reopened = await openEventStream(server().baseUrl, path, as(KEY_A));
    expect(reopened.status).toBe(200);

    // Four open again: a stream whose client vanishes takes the fifth place...
    theirs[1].close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const socket = net.connect(server().port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    await new Promise<void>((resolve) =>
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_B}\r\n\r\n`,
        () => resolve(),
      ),
    );
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    expect((await openEventStream(server().baseUrl, path, as(KEY_B))).status).toBe(503);
    // ...and frees it when it is gone, without a word.
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const afterVanish = await openEventStream(server().baseUrl, path, as(KEY_B));
    expect(afterVanish.status).toBe(200);

    [mine[1], mine[2], theirs[0], reopened, afterVanish].forEach((stream) => stream.close());
  });
});
