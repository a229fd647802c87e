import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import {
  describeWithRedis,
  describeWithRedisBinary,
  PrivateRedis,
  useRedisInstances,
} from './utils/redis';
import { requestText, ServerProcess, spawnServer, useServer } from './utils/spawn-server';

const BACKEND_KEY = 'backend-key-0123456789abcdef';
const CONSOLE_KEY = 'console-key-fedcba9876543210';
const API_KEYS = `${BACKEND_KEY},${CONSOLE_KEY}`;
const bearer = (credential: string) => ({ Authorization: `Bearer ${credential}` });

const post = (
  server: ServerProcess,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
) => requestText(server.baseUrl, 'POST', path, { body, headers });

const get = (server: ServerProcess, path: string, headers: Record<string, string> = {}) =>
  requestText(server.baseUrl, 'GET', path, { headers });

const idOf = (res: { text: string }) => (JSON.parse(res.text) as { id: string }).id;

/** UUIDs in form that are not random: nil, max, v1 (time and node), v4 with a wrong variant. */
const NOT_RANDOM_UUIDS = [
  '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '6ba7b810-9dad-11d1-80b4-00c04fd430c8',
  '6ba7b810-9dad-41d1-c0b4-00c04fd430c8',
];

async function messageCount(server: ServerProcess, id: string, headers = {}): Promise<number> {
  const history = await get(server, `/api/conversations/${id}`, headers);
  return (JSON.parse(history.text) as { messageCount: number }).messageCount;
}

/** Ten identical posts at once with one key, spread over `servers`. */
async function tenAtOnce(servers: ServerProcess[], id: string, key: string) {
  const responses = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      post(
        servers[i % servers.length],
        `/api/conversations/${id}/messages`,
        { sender: 'customer', content: 'pay once' },
        { 'Idempotency-Key': key },
      ),
    ),
  );
  expect(responses.map((r) => r.status)).toEqual(Array(10).fill(201));
  expect(new Set(responses.map((r) => r.text)).size).toBe(1);
  expect(responses.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(9);
  expect(await messageCount(servers[0], id)).toBe(1);
}

/**
 * Sends a keyed post over a raw connection and closes it as soon as the request is written:
 * the client that goes away before its answer (a mobile network, a proxy timing out).
 */
function postAndVanish(server: ServerProcess, path: string, body: unknown, key: string) {
  const payload = JSON.stringify(body);
  return new Promise<void>((resolve, reject) => {
    const socket = net.connect(server.port, '127.0.0.1', () => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          `Idempotency-Key: ${key}\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`,
        () => {
          socket.destroy();
          resolve();
        },
      );
    });
    socket.on('error', reject);
  });
}

/** After a client vanished with its keyed post: the retry replays it, one copy is stored. */
async function retryAfterVanishing(servers: ServerProcess[]) {
  const id = idOf(await post(servers[0], '/api/conversations', undefined));
  const path = `/api/conversations/${id}/messages`;
  const body = { sender: 'customer', content: 'sent from a train' };
  for (let i = 0; i < 5; i++) {
    const key = randomUUID();
    await postAndVanish(servers[i % servers.length], path, body, key);
    // Wait until the server has applied it, as the client's retry would come later anyway.
    const deadline = Date.now() + 5_000;
    while ((await messageCount(servers[0], id)) < i + 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const retry = await post(servers[(i + 1) % servers.length], path, body, {
      'Idempotency-Key': key,
    });
    expect(retry.status).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(await messageCount(servers[0], id)).toBe(i + 1);
  }
}

describe('Idempotency-Key (built server, WORKERS=2)', () => {
  jest.setTimeout(60_000);
  const server = useServer({ WORKERS: '2' });

  const create = async (headers: Record<string, string> = {}) =>
    post(server(), '/api/conversations', undefined, headers);

  it('ten identical posts at once make one message and ten identical responses', async () => {
    const id = idOf(await create());
    await tenAtOnce([server()], id, randomUUID());
  });

  it('answers a reused key with another body with 422 idempotency_key_reused', async () => {
    const id = idOf(await create());
    const path = `/api/conversations/${id}/messages`;
    const key = { 'Idempotency-Key': randomUUID() };
    const first = await post(server(), path, { sender: 'agent', content: 'a' }, key);
    expect(first.status).toBe(201);

    const other = await post(server(), path, { sender: 'agent', content: 'b' }, key);
    expect(other.status).toBe(422);
    expect(JSON.parse(other.text)).toMatchObject({ code: 'idempotency_key_reused' });
    expect(await messageCount(server(), id)).toBe(1);
  });

  it('replays a create with its Location, and creates one conversation', async () => {
    const key = { 'Idempotency-Key': randomUUID() };
    const first = await create(key);
    const again = await create(key);
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    // The same conversation; its customer token is never kept, so the replay carries a new one.
    const { customerToken: firstToken, ...firstBody } = JSON.parse(first.text) as Record<
      string,
      string
    >;
    const { customerToken: againToken, ...againBody } = JSON.parse(again.text) as Record<
      string,
      string
    >;
    expect(againBody).toEqual(firstBody);
    expect(againToken).toMatch(new RegExp(`^${firstBody.id}\\.`));
    expect(againToken).not.toBe(firstToken);
    expect(again.headers.location).toBe(first.headers.location);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(first.headers['idempotent-replayed']).toBeUndefined();
  });

  it('runs a retry again after a failed request, keeping only successes', async () => {
    const id = idOf(await create());
    const path = `/api/conversations/${id}/messages`;
    const key = { 'Idempotency-Key': randomUUID() };
    const bad = await post(server(), path, { sender: 'bot', content: 'x' }, key);
    expect(bad.status).toBe(400);
    const again = await post(server(), path, { sender: 'bot', content: 'x' }, key);
    expect(again.status).toBe(400);
    expect(again.headers['idempotent-replayed']).toBeUndefined();
  });

  it.each([
    ['empty', ''],
    ['with a space', 'a b'],
    ['too long', 'k'.repeat(256)],
  ])('refuses a key %s with 400', async (_, key) => {
    const res = await create({ 'Idempotency-Key': key });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text)).toMatchObject({
      code: 'validation_failed',
      errors: [{ field: 'Idempotency-Key', message: 'must be 1 to 255 visible ASCII characters' }],
    });
  });

  it('refuses a key that is not a UUID from a caller without a credential, and stores nothing', async () => {
    for (const key of ['checkout-42', `key:0123456789ab:checkout-42`]) {
      const res = await create({ 'Idempotency-Key': key });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({
        code: 'validation_failed',
        errors: [
          {
            field: 'Idempotency-Key',
            message:
              'without a credential, must be a random UUID (for example crypto.randomUUID())',
          },
        ],
      });
    }
  });

  it('replays a post whose client vanished before the answer, with one copy stored', async () => {
    await retryAfterVanishing([server()]);
  });

  it('replays a keyed post retried with the conversation id in upper case (one id, any case)', async () => {
    const id = idOf(await create());
    const key = { 'Idempotency-Key': randomUUID() };
    const body = { sender: 'customer', content: 'pay once' };
    const first = await post(server(), `/api/conversations/${id}/messages`, body, key);
    expect(first.status).toBe(201);
    const again = await post(
      server(),
      `/api/conversations/${id.toUpperCase()}/messages`,
      body,
      key,
    );
    expect(again.status).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.text).toBe(first.text);
    expect(await messageCount(server(), id)).toBe(1);
  });

  it('takes only a random (v4) UUID from a caller without a credential: nil and v1 refused', async () => {
    const id = idOf(await create());
    const path = `/api/conversations/${id}/messages`;
    const body = { sender: 'agent', content: 'Refund sent.' };
    for (const key of NOT_RANDOM_UUIDS) {
      for (const res of [
        await create({ 'Idempotency-Key': key }),
        await post(server(), path, body, { 'Idempotency-Key': key }),
      ]) {
        expect(res.status).toBe(400);
        expect(JSON.parse(res.text)).toMatchObject({
          code: 'validation_failed',
          errors: [{ field: 'Idempotency-Key' }],
        });
      }
    }
    expect(await messageCount(server(), id)).toBe(0);
    // A random UUID in either case is taken.
    const random = randomUUID().toUpperCase();
    expect((await post(server(), path, body, { 'Idempotency-Key': random })).status).toBe(201);
  });
});

describe('Idempotency-Key with access control (built server, WORKERS=2)', () => {
  jest.setTimeout(60_000);
  const server = useServer({ WORKERS: '2', API_KEYS, PUBLIC_CONVERSATIONS: 'true' });
  const asBackend = bearer(BACKEND_KEY);

  it('never replays to a caller without a credential, whatever it spells: 401, no token', async () => {
    const key = 'order-4711-reply-1';
    const created = await post(server(), '/api/conversations', undefined, {
      ...asBackend,
      'Idempotency-Key': key,
    });
    const { id } = JSON.parse(created.text) as { id: string };
    const path = `/api/conversations/${id}/messages`;
    const body = { sender: 'agent', content: 'Refund sent.' };
    expect(
      (await post(server(), path, body, { ...asBackend, 'Idempotency-Key': key })).status,
    ).toBe(201);

    // Every spelling of the backend's scope the old prefix scheme would have matched.
    const spellings = [key, `key:${'0'.repeat(12)}:${key}`, `conversation:${id}:${key}`];
    for (const spelling of spellings) {
      const replayPost = await post(server(), path, body, { 'Idempotency-Key': spelling });
      expect(replayPost.status).toBe(401);
      expect(replayPost.headers['idempotent-replayed']).toBeUndefined();

      const replayCreate = await post(server(), '/api/conversations', undefined, {
        'Idempotency-Key': spelling,
      });
      expect(replayCreate.status).toBe(400); // not a UUID: nothing replayed, nothing made
      expect(replayCreate.text).not.toContain('customerToken');
    }
    expect(await messageCount(server(), id, asBackend)).toBe(1);
  });

  it('takes only a random (v4) UUID for an anonymous create; a key holder keeps its own keys', async () => {
    for (const key of NOT_RANDOM_UUIDS) {
      const anonymous = await post(server(), '/api/conversations', undefined, {
        'Idempotency-Key': key,
      });
      expect(anonymous.status).toBe(400);
      expect(JSON.parse(anonymous.text)).toMatchObject({
        code: 'validation_failed',
        errors: [{ field: 'Idempotency-Key' }],
      });
      expect(anonymous.text).not.toContain('customerToken');
      const keyed = await post(server(), '/api/conversations', undefined, {
        ...asBackend,
        'Idempotency-Key': key,
      });
      expect(keyed.status).toBe(201);
    }
  });

  it('gives each caller its own keys: a planted key is never handed to a keyed caller', async () => {
    const key = randomUUID();
    // An anonymous client plants the key first (PUBLIC_CONVERSATIONS lets it create).
    const planted = await post(server(), '/api/conversations', undefined, {
      'Idempotency-Key': key,
    });
    expect(planted.status).toBe(201);
    const backend = await post(server(), '/api/conversations', undefined, {
      ...asBackend,
      'Idempotency-Key': key,
    });
    const consoleKey = await post(server(), '/api/conversations', undefined, {
      ...bearer(CONSOLE_KEY),
      'Idempotency-Key': key,
    });
    const ids = [planted, backend, consoleKey].map(idOf);
    expect(new Set(ids).size).toBe(3);
    expect(backend.headers['idempotent-replayed']).toBeUndefined();
    expect(consoleKey.headers['idempotent-replayed']).toBeUndefined();

    // A customer's keys are its own too: the backend's post is not replayed to it.
    const { customerToken } = JSON.parse(backend.text) as { customerToken: string };
    const path = `/api/conversations/${ids[1]}/messages`;
    await post(
      server(),
      path,
      { sender: 'agent', content: 'from the backend' },
      {
        ...asBackend,
        'Idempotency-Key': key,
      },
    );
    const customer = await post(
      server(),
      path,
      { sender: 'customer', content: 'mine' },
      {
        ...bearer(customerToken),
        'Idempotency-Key': key,
      },
    );
    expect(customer.status).toBe(201);
    expect(customer.headers['idempotent-replayed']).toBeUndefined();
    expect(JSON.parse(customer.text)).toMatchObject({ sender: 'customer', content: 'mine' });
  });
});

describe('Idempotency-Key replays are requests: authorized and counted (WORKERS=0)', () => {
  jest.setTimeout(60_000);
  const server = useServer({
    WORKERS: '0',
    API_KEYS,
    PUBLIC_CONVERSATIONS: 'true',
    RATE_LIMIT_MAX: '3',
    RATE_LIMIT_WINDOW_MS: '60000',
  });

  it('refuses the replay past the limit with 429, and that refusal issues no token', async () => {
    const key = { 'Idempotency-Key': randomUUID() };
    const answers = [];
    for (let i = 0; i < 5; i++) {
      answers.push(await post(server(), '/api/conversations', undefined, key));
    }
    expect(answers.map((res) => res.status)).toEqual([201, 201, 201, 429, 429]);
    expect(answers.slice(1, 3).map((res) => res.headers['idempotent-replayed'])).toEqual([
      'true',
      'true',
    ]);
    // The last token handed out still opens the conversation: the refused replays changed nothing.
    const { id, customerToken } = JSON.parse(answers[2].text) as {
      id: string;
      customerToken: string;
    };
    expect((await get(server(), `/api/conversations/${id}`, bearer(customerToken))).status).toBe(
      200,
    );
  });
});

describe('Idempotency-Key across a stalled primary (WORKERS=1, STORE_TIMEOUT_MS=300)', () => {
  jest.setTimeout(60_000);
  const server = useServer({ WORKERS: '1', STORE_TIMEOUT_MS: '300' });

  it('after a 503, a retry with the same key replays the write applied late, or applies it once', async () => {
    // One kept-alive connection, open before the stall: the primary accepts new connections,
    // so a stopped primary would hold a new one back instead of letting the worker answer.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const via = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      requestText(server().baseUrl, 'POST', path, { body, headers, agent });
    const id = idOf(await via('/api/conversations', undefined));
    const path = `/api/conversations/${id}/messages`;
    const primary = server().child;
    let late = 0;
    for (let i = 0; i < 4; i++) {
      const key = { 'Idempotency-Key': randomUUID() };
      const body = { sender: 'agent', content: `stalled ${i}` };
      primary.kill('SIGSTOP');
      let first;
      try {
        first = await via(path, body, key);
      } finally {
        primary.kill('SIGCONT');
      }
      expect(first.status).toBe(503);
      expect(JSON.parse(first.text)).toMatchObject({ code: 'store_unavailable' });
      // The primary wakes up and applies what was sent to it meanwhile; the client retries.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const retry = await via(path, body, key);
      expect(retry.status).toBe(201);
      if (retry.headers['idempotent-replayed'] === 'true') {
        late++;
      }
      expect(await messageCount(server(), id)).toBe(i + 1);
    }
    agent.destroy();
    // The stall is the primary's, so what the worker sent is applied when it wakes.
    expect(late).toBeGreaterThan(0);
  });
});

describeWithRedis('Idempotency-Key: STORE=redis, two instances', (redis) => {
  jest.setTimeout(60_000);
  const servers = useRedisInstances(redis, [{ WORKERS: '0' }, { WORKERS: '0' }]);

  it('ten identical posts at once across both instances make one message', async () => {
    const id = idOf(await post(servers()[0], '/api/conversations', undefined));
    await tenAtOnce(servers(), id, randomUUID());
  });

  it('replays a create across instances: one conversation', async () => {
    const key = { 'Idempotency-Key': randomUUID() };
    const first = await post(servers()[0], '/api/conversations', undefined, key);
    const again = await post(servers()[1], '/api/conversations', undefined, key);
    expect(again.status).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(idOf(again)).toBe(idOf(first));
  });

  it('replays a post whose client vanished before the answer, with one copy stored', async () => {
    await retryAfterVanishing(servers());
  });
});

describeWithRedisBinary(
  'Idempotency-Key across a stalled Redis (private redis-server, STORE_TIMEOUT_MS=300)',
  (binary) => {
    jest.setTimeout(60_000);
    let redis: PrivateRedis;
    let server: ServerProcess;

    beforeAll(async () => {
      redis = await PrivateRedis.start(binary);
      server = await spawnServer({
        STORE: 'redis',
        REDIS_URL: redis.url,
        WORKERS: '0',
        STORE_TIMEOUT_MS: '300',
      });
    }, 30_000);

    afterAll(async () => {
      await server?.stop();
      await redis?.stop();
    }, 30_000);

    it('after a 503, a retry with the same key replays the write applied late, or applies it once', async () => {
      const id = idOf(await post(server, '/api/conversations', undefined));
      const path = `/api/conversations/${id}/messages`;
      for (let i = 0; i < 4; i++) {
        const key = { 'Idempotency-Key': randomUUID() };
        const body = { sender: 'agent', content: `stalled ${i}` };
        redis.signal('SIGSTOP');
        let first;
        try {
          first = await post(server, path, body, key);
        } finally {
          redis.signal('SIGCONT');
        }
        expect(first.status).toBe(503);
        await new Promise((resolve) => setTimeout(resolve, 200));
        let retry = await post(server, path, body, key);
        for (let wait = 0; retry.status === 503 && wait < 20; wait++) {
          // The client is reconnecting after the stall: a 503 is the promised answer; retry.
          await new Promise((resolve) => setTimeout(resolve, 250));
          retry = await post(server, path, body, key);
        }
        expect(retry.status).toBe(201);
        expect(await messageCount(server, id)).toBe(i + 1);
      }
    });
  },
);
