import { describeWithRedis } from './utils/redis';
import { requestText, ServerProcess, spawnServer, useServer } from './utils/spawn-server';

const post = (
  server: ServerProcess,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
) => requestText(server.baseUrl, 'POST', path, { body, headers });

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
  const history = await requestText(servers[0].baseUrl, 'GET', `/api/conversations/${id}`);
  expect((JSON.parse(history.text) as { messageCount: number }).messageCount).toBe(1);
}

describe('Idempotency-Key (built server, WORKERS=2)', () => {
  jest.setTimeout(60_000);
  const server = useServer({ WORKERS: '2' });

  const create = async (headers: Record<string, string> = {}) =>
    post(server(), '/api/conversations', undefined, headers);

  it('ten identical posts at once make one message and ten identical responses', async () => {
    const id = (JSON.parse((await create()).text) as { id: string }).id;
    await tenAtOnce([server()], id, 'post-once-1');
  });

  it('answers a reused key with another body with 422 idempotency_key_reused', async () => {
    const id = (JSON.parse((await create()).text) as { id: string }).id;
    const path = `/api/conversations/${id}/messages`;
    const first = await post(
      server(),
      path,
      { sender: 'agent', content: 'a' },
      { 'Idempotency-Key': 'k-422' },
    );
    expect(first.status).toBe(201);

    const other = await post(
      server(),
      path,
      { sender: 'agent', content: 'b' },
      { 'Idempotency-Key': 'k-422' },
    );
    expect(other.status).toBe(422);
    expect(JSON.parse(other.text)).toMatchObject({ code: 'idempotency_key_reused' });
  });

  it('replays a create with its Location, and creates one conversation', async () => {
    const first = await create({ 'Idempotency-Key': 'create-1' });
    const again = await create({ 'Idempotency-Key': 'create-1' });
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
    const id = (JSON.parse((await create()).text) as { id: string }).id;
    const path = `/api/conversations/${id}/messages`;
    const bad = await post(
      server(),
      path,
      { sender: 'bot', content: 'x' },
      { 'Idempotency-Key': 'k-fail' },
    );
    expect(bad.status).toBe(400);
    const again = await post(
      server(),
      path,
      { sender: 'bot', content: 'x' },
      { 'Idempotency-Key': 'k-fail' },
    );
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
});

describeWithRedis('Idempotency-Key: STORE=redis, two instances', (redis) => {
  jest.setTimeout(60_000);

  it('ten identical posts at once across both instances make one message', async () => {
    const env = {
      STORE: 'redis',
      REDIS_URL: redis().url,
      REDIS_KEY_PREFIX: redis().newPrefix(),
      WORKERS: '0',
    };
    const servers = await Promise.all([spawnServer(env), spawnServer(env)]);
    try {
      const created = await post(servers[0], '/api/conversations', undefined);
      const id = (JSON.parse(created.text) as { id: string }).id;
      await tenAtOnce(servers, id, 'redis-once-1');
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
    }
  });
});
