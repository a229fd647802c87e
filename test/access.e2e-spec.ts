import request from 'supertest';
import { useTestApp } from './utils/create-app';
import {
  API_KEYS,
  BACKEND_KEY,
  bearer,
  CONSOLE_KEY,
  Created,
  useAppWithKeys,
} from './utils/credentials';
import { openEventStream } from './utils/event-stream';
import { expectProblemCode } from './utils/problem';
import { describeWithRedis, useRedisInstances } from './utils/redis';
import { requestText, ServerProcess, TextResponse, useServer } from './utils/spawn-server';

// Access control and rate limits across routes. What one route answers a credential (a
// customer posting as agent, the token a create returns): that route's file in routes/.

describe('access control (API_KEYS set)', () => {
  const { app, http, create, messageCount } = useAppWithKeys();

  describe('API keys', () => {
    it('gives either key full access: create, post as agent, read, delete', async () => {
      const { id } = await create();
      const posted = await http()
        .post(`/api/conversations/${id}/messages`)
        .set(bearer(CONSOLE_KEY))
        .send({ sender: 'agent', content: 'hello' });
      expect(posted.status).toBe(201);
      const read = await http().get(`/api/conversations/${id}`).set(bearer(CONSOLE_KEY));
      expect(read.status).toBe(200);
      const deleted = await http()
        .delete(`/api/conversations/${id}/messages/${(posted.body as { id: string }).id}`)
        .set(bearer(BACKEND_KEY));
      expect(deleted.status).toBe(200);
    });

    it('401 without a credential, on every API route, and changes nothing', async () => {
      const { id } = await create();
      const messageId = '00000000-0000-4000-8000-000000000000';
      const attempts = [
        http().post('/api/conversations'),
        http().get(`/api/conversations/${id}`),
        http().get(`/api/conversations/${id}/messages`),
        http().get(`/api/conversations/${id}/events`),
        http().post(`/api/conversations/${id}/messages`).send({ sender: 'agent', content: 'x' }),
        http().delete(`/api/conversations/${id}/messages/${messageId}`),
        http().get('/metrics'),
      ];
      for (const res of await Promise.all(attempts)) {
        expectProblemCode(res, 401, 'unauthorized');
      }
      expect(await messageCount(id)).toBe(0);
    });

    it('401 for a wrong key, a key of another case, or another scheme', async () => {
      const { id } = await create();
      for (const authorization of [
        `Bearer ${BACKEND_KEY}x`,
        `Bearer ${BACKEND_KEY.toUpperCase()}`,
        `Basic ${Buffer.from(`user:${BACKEND_KEY}`).toString('base64')}`,
        BACKEND_KEY,
        'Bearer',
      ]) {
        const res = await http()
          .post(`/api/conversations/${id}/messages`)
          .set('Authorization', authorization)
          .send({ sender: 'agent', content: 'x' });
        expectProblemCode(res, 401, 'unauthorized');
      }
      expect(await messageCount(id)).toBe(0);
    });

    it('leaves the docs and health probes open', async () => {
      for (const path of ['/docs', '/docs-json', '/health/live', '/health/ready']) {
        const res = await http().get(path).redirects(1);
        expect({ path, status: res.status }).toEqual({ path, status: 200 });
      }
    });
  });

  describe('customer tokens', () => {
    it('lets the customer read, page, follow and post as customer', async () => {
      const { id, customerToken } = await create();
      const posted = await http()
        .post(`/api/conversations/${id}/messages`)
        .set(bearer(customerToken))
        .send({ sender: 'customer', content: 'where is my order?' });
      expect(posted.status).toBe(201);

      const read = await http().get(`/api/conversations/${id}`).set(bearer(customerToken));
      expect(read.status).toBe(200);
      expect((read.body as { messageCount: number }).messageCount).toBe(1);
      const page = await http()
        .get(`/api/conversations/${id}/messages?limit=5`)
        .set(bearer(customerToken));
      expect(page.status).toBe(200);

      const server = app().getHttpServer();
      if (!server.listening) {
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      }
      const { port } = server.address() as { port: number };
      const stream = await openEventStream(
        `http://127.0.0.1:${port}`,
        `/api/conversations/${id}/events?lastEventId=0`,
        bearer(customerToken),
      );
      try {
        expect(stream.status).toBe(200);
        const [event] = await stream.waitForEvents(1);
        expect(event).toMatchObject({ id: '1', event: 'message.created' });
      } finally {
        stream.close();
      }
    });

    it('403 for what only a key may do: delete, open a conversation, metrics', async () => {
      const { id, customerToken } = await create();
      const posted = await http()
        .post(`/api/conversations/${id}/messages`)
        .set(bearer(customerToken))
        .send({ sender: 'customer', content: 'keep me' });
      const deleted = await http()
        .delete(`/api/conversations/${id}/messages/${(posted.body as { id: string }).id}`)
        .set(bearer(customerToken));
      expectProblemCode(deleted, 403, 'forbidden');
      expect(await messageCount(id)).toBe(1);
      expectProblemCode(
        await http().post('/api/conversations').set(bearer(customerToken)),
        403,
        'forbidden',
      );
      expectProblemCode(await http().get('/metrics').set(bearer(customerToken)), 403, 'forbidden');
    });

    it('lets a customer token reach its own conversation addressed in upper case; the token itself is exact', async () => {
      const { id, customerToken } = await create();
      const upper = id.toUpperCase();
      const posted = await http()
        .post(`/api/conversations/${upper}/messages`)
        .set(bearer(customerToken))
        .send({ sender: 'customer', content: 'where is my order?' });
      expect(posted.status).toBe(201);
      expect((posted.body as { conversationId: string }).conversationId).toBe(id);
      const read = await http().get(`/api/conversations/${upper}`).set(bearer(customerToken));
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({ id, messageCount: 1 });
      const page = await http()
        .get(`/api/conversations/${upper}/messages`)
        .set(bearer(customerToken));
      expect(page.status).toBe(200);
      const receipt = await http()
        .post(`/api/conversations/${upper}/read`)
        .set(bearer(customerToken))
        .send({ sender: 'customer', seq: 1 });
      expect(receipt.status).toBe(200);
      // The token is compared as it was issued: its id in upper case is another credential.
      const [tokenId, secret] = customerToken.split('.');
      const respelled = await http()
        .get(`/api/conversations/${id}`)
        .set(bearer(`${tokenId.toUpperCase()}.${secret}`));
      expectProblemCode(respelled, 401, 'unauthorized');
    });

    it("404 with another conversation's token, as if the conversation did not exist", async () => {
      const mine = await create();
      const theirs = await create();
      await http()
        .post(`/api/conversations/${theirs.id}/messages`)
        .set(bearer(BACKEND_KEY))
        .send({ sender: 'agent', content: 'private' });
      for (const res of [
        await http().get(`/api/conversations/${theirs.id}`).set(bearer(mine.customerToken)),
        await http()
          .get(`/api/conversations/${theirs.id}/messages`)
          .set(bearer(mine.customerToken)),
        await http().get(`/api/conversations/${theirs.id}/events`).set(bearer(mine.customerToken)),
        await http()
          .post(`/api/conversations/${theirs.id}/messages`)
          .set(bearer(mine.customerToken))
          .send({ sender: 'customer', content: 'hi' }),
      ]) {
        expectProblemCode(res, 404, 'conversation_not_found');
        expect(res.text).not.toContain('private');
      }
      expect(await messageCount(theirs.id)).toBe(1);
    });

    it('401 for a forged token: the right conversation with a made-up secret', async () => {
      const { id, customerToken } = await create();
      const secret = customerToken.split('.')[1];
      const forged = `${id}.${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`;
      const res = await http().get(`/api/conversations/${id}`).set(bearer(forged));
      expectProblemCode(res, 401, 'unauthorized');
    });
  });
});

describe('rate limits (one process)', () => {
  const app = useTestApp({
    env: {
      API_KEYS,
      PUBLIC_CONVERSATIONS: 'true',
      RATE_LIMIT_MAX: '5',
      RATE_LIMIT_API_KEY_MAX: '8',
    },
  });
  const http = () => request(app().getHttpServer());

  it('counts each client address across routes: 429 problem+json with Retry-After past the limit', async () => {
    const answers = [];
    for (let i = 0; i < 7; i++) {
      // Alternate routes: the budget is the client's, not the route's; wrong keys count too.
      answers.push(
        i % 2 === 0
          ? await http().post('/api/conversations')
          : await http().get('/api/conversations/not-a-uuid').set(bearer('wrong-key-000000000')),
      );
    }
    expect(answers.map((res) => res.status)).toEqual([201, 401, 201, 401, 201, 429, 429]);
    expect(answers.slice(0, 5).map((res) => res.headers['ratelimit-remaining'])).toEqual([
      '4',
      '3',
      '2',
      '1',
      '0',
    ]);
    expect(answers[0].headers['ratelimit-limit']).toBe('5');
    expect(Number(answers[0].headers['ratelimit-reset'])).toBeGreaterThan(0);
    const refused = answers[5];
    expectProblemCode(refused, 429, 'rate_limited');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(refused.headers['ratelimit-remaining']).toBe('0');
  });

  it('gives each API key and each customer token a budget of its own; probes are never limited', async () => {
    const keyAnswers = [];
    for (let i = 0; i < 9; i++) {
      keyAnswers.push((await http().post('/api/conversations').set(bearer(BACKEND_KEY))).status);
    }
    expect(keyAnswers).toEqual([201, 201, 201, 201, 201, 201, 201, 201, 429]);
    const other = await http().post('/api/conversations').set(bearer(CONSOLE_KEY));
    expect(other.status).toBe(201);

    // This address spent its budget in the test above; the customer token has its own.
    expect((await http().post('/api/conversations')).status).toBe(429);
    const { id, customerToken } = other.body as Created;
    const reads = [];
    for (let i = 0; i < 6; i++) {
      reads.push((await http().get(`/api/conversations/${id}`).set(bearer(customerToken))).status);
    }
    expect(reads).toEqual([200, 200, 200, 200, 200, 429]);

    const health = await Promise.all(Array.from({ length: 10 }, () => http().get('/health/live')));
    expect(health.map((res) => res.status)).toEqual(Array(10).fill(200));
  });
});

/**
 * PUBLIC_CONVERSATIONS lets anyone mint customer tokens, each with a budget of its own: an
 * address's anonymous tokens share at most 10 clients' worth. RATE_LIMIT_MAX=20 gives 200
 * requests a window; MAX_EVENT_STREAMS_PER_CLIENT=2 gives 20 streams, half the 40 places.
 * TRUST_PROXY lets each test be its own address (X-Forwarded-For).
 */
const ANONYMOUS_TOKENS_ENV = {
  API_KEYS,
  PUBLIC_CONVERSATIONS: 'true',
  TRUST_PROXY: 'loopback',
  RATE_LIMIT_MAX: '20',
  MAX_EVENT_STREAMS: '40',
  MAX_EVENT_STREAMS_PER_CLIENT: '2',
};
const RATE_LIMIT_MAX = 20;
const ADDRESS_CAP = 10 * RATE_LIMIT_MAX;
const from = (address: string, credential?: string) => ({
  'X-Forwarded-For': address,
  ...(credential ? bearer(credential) : {}),
});

/** Opens `count` conversations from `address` with no credential (each must be 201). */
async function mintAnonymous(baseUrl: string, address: string, count: number): Promise<Created[]> {
  const tokens: Created[] = [];
  for (let i = 0; i < count; i++) {
    const res = await requestText(baseUrl, 'POST', '/api/conversations', {
      headers: from(address),
    });
    expect(res.status).toBe(201);
    tokens.push(JSON.parse(res.text) as Created);
  }
  return tokens;
}

/**
 * Each token reads its conversation `each` times from `address`, a token's reads at once,
 * spread over `baseUrls`; the answers, token by token.
 */
async function readEach(
  baseUrls: string[],
  address: string,
  tokens: Created[],
  each: number,
): Promise<TextResponse[][]> {
  const answers: TextResponse[][] = [];
  for (const { id, customerToken } of tokens) {
    answers.push(
      await Promise.all(
        Array.from({ length: each }, (_, i) =>
          requestText(baseUrls[i % baseUrls.length], 'GET', `/api/conversations/${id}`, {
            headers: from(address, customerToken),
          }),
        ),
      ),
    );
  }
  return answers;
}

/** The guarantee on one address's anonymous tokens, on `baseUrls` (one deployment). */
async function expectAddressCapOnRequests(baseUrls: string[], address: string): Promise<void> {
  // Anonymous creates count against the address's own budget: RATE_LIMIT_MAX of them.
  const tokens = await mintAnonymous(baseUrls[0], address, RATE_LIMIT_MAX);
  const refusedCreate = await requestText(baseUrls[0], 'POST', '/api/conversations', {
    headers: from(address),
  });
  expectProblemCode(refusedCreate, 429, 'rate_limited');

  // 20 tokens, each with its full budget: 400 reads asked, 200 the address may have.
  const answers = await readEach(baseUrls, address, tokens, RATE_LIMIT_MAX);
  const all = answers.flat();
  const answered = all.filter((res) => res.status === 200).length;
  // A process may reserve hits ahead (1% of a limit of 200 and up) and be refused that early.
  expect(answered).toBeLessThanOrEqual(ADDRESS_CAP);
  expect(answered).toBeGreaterThanOrEqual(ADDRESS_CAP * 0.99 - baseUrls.length);
  const refused = all.filter((res) => res.status !== 200);
  expect(new Set(refused.map((res) => res.status))).toEqual(new Set([429]));
  expectProblemCode(refused[0], 429, 'rate_limited');
  expect(refused[0].headers['ratelimit-limit']).toBe(String(ADDRESS_CAP));
  // No token ever passes its own budget.
  for (const mine of answers) {
    expect(mine.filter((res) => res.status === 200).length).toBeLessThanOrEqual(RATE_LIMIT_MAX);
  }
}

/** A token minted with an API key, used from `address`: its own budget, nothing else. */
async function expectKeyTokenUnaffected(baseUrls: string[], address: string): Promise<void> {
  const made = await requestText(baseUrls[0], 'POST', '/api/conversations', {
    headers: from(address, BACKEND_KEY),
  });
  expect(made.status).toBe(201);
  const [reads] = await readEach(baseUrls, address, [JSON.parse(made.text) as Created], 21);
  const statuses = reads.map((res) => res.status);
  expect(statuses.filter((status) => status === 200)).toHaveLength(RATE_LIMIT_MAX);
  expect(statuses.filter((status) => status === 429)).toHaveLength(1);
}

describe('anonymous customer tokens: one address, many tokens (PUBLIC_CONVERSATIONS=true)', () => {
  const app = useTestApp({ env: ANONYMOUS_TOKENS_ENV });
  let baseUrl = '';
  beforeAll(async () => {
    const server = app().getHttpServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  it('answers at most 10 × RATE_LIMIT_MAX requests a window for all the anonymous tokens one address uses', async () => {
    await expectAddressCapOnRequests([baseUrl], '198.51.100.1');
  });

  it('lets an address hold at most 10 × MAX_EVENT_STREAMS_PER_CLIENT streams through anonymous tokens', async () => {
    const address = '198.51.100.2';
    const tokens = await mintAnonymous(baseUrl, address, RATE_LIMIT_MAX);
    const open = [];
    try {
      for (const { id, customerToken } of tokens) {
        for (let i = 0; i < 2; i++) {
          open.push(
            await openEventStream(
              baseUrl,
              `/api/conversations/${id}/events`,
              from(address, customerToken),
            ),
          );
        }
      }
      expect(open.filter((stream) => stream.status === 200).length).toBe(10 * 2);
      const refused = open.filter((stream) => stream.status !== 200);
      expect(refused.map((stream) => stream.status)).toEqual(Array(20).fill(429));
      expect(JSON.parse(refused[0].body())).toMatchObject({ code: 'too_many_streams' });

      // A token minted with a key, from the same address: its own share, as before.
      const made = await requestText(baseUrl, 'POST', '/api/conversations', {
        headers: from(address, BACKEND_KEY),
      });
      const { id, customerToken } = JSON.parse(made.text) as Created;
      for (let i = 0; i < 2; i++) {
        const mine = await openEventStream(
          baseUrl,
          `/api/conversations/${id}/events`,
          from(address, customerToken),
        );
        open.push(mine);
        expect(mine.status).toBe(200);
      }
    } finally {
      open.forEach((stream) => stream.close());
    }
  });

  it('leaves tokens minted with an API key to their own budget', async () => {
    await expectKeyTokenUnaffected([baseUrl], '198.51.100.3');
  });
});

describe('anonymous customer tokens across workers (built server, WORKERS=2)', () => {
  jest.setTimeout(30_000);
  const server = useServer({ ...ANONYMOUS_TOKENS_ENV, WORKERS: '2' });

  it('answers at most 10 × RATE_LIMIT_MAX requests a window for all the anonymous tokens one address uses', async () => {
    await expectAddressCapOnRequests([server().baseUrl], '198.51.100.21');
  });
});

/** Sends `count` requests at once, each on a fresh connection; returns their statuses. */
async function burst(servers: ServerProcess[], count: number): Promise<number[]> {
  const answers = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      requestText(servers[i % servers.length].baseUrl, 'POST', '/api/conversations'),
    ),
  );
  return answers.map((res) => res.status);
}

describe('rate limit across workers (built server, WORKERS=2)', () => {
  jest.setTimeout(30_000);
  const server = useServer({ WORKERS: '2', RATE_LIMIT_MAX: '20', RATE_LIMIT_WINDOW_MS: '60000' });

  it('accepts exactly the limit in total, however the connections are shared out', async () => {
    const statuses = await burst([server()], 60);
    expect(statuses.filter((status) => status === 201)).toHaveLength(20);
    expect(statuses.filter((status) => status === 429)).toHaveLength(40);
    // Both workers served: each logged access lines.
    const servedBy = new Set(
      server()
        .lines(/POST \/api\/conversations/)
        .map((line) => /^\[worker (\d+)\]/.exec(line)?.[1]),
    );
    expect(servedBy.size).toBe(2);
  });

  it('warns at start that access control is off', () => {
    expect(server().lines(/API_KEYS is not set: access control is OFF/)).toHaveLength(1);
  });
});

describeWithRedis('rate limit across instances (STORE=redis)', (redis) => {
  jest.setTimeout(30_000);
  const env = { RATE_LIMIT_MAX: '15', API_KEYS, PUBLIC_CONVERSATIONS: 'true' };
  const servers = useRedisInstances(redis, [
    { ...env, WORKERS: '2' },
    { ...env, WORKERS: '0' },
  ]);

  it('accepts exactly the limit in total across two instances', async () => {
    const statuses = await burst(servers(), 45);
    expect(statuses.filter((status) => status === 201)).toHaveLength(15);
    expect(statuses.filter((status) => status === 429)).toHaveLength(30);
  });

  it('does not warn when API_KEYS is set', () => {
    for (const server of servers()) {
      expect(server.lines(/access control is OFF/)).toEqual([]);
    }
  });
});

describeWithRedis('anonymous customer tokens across instances (STORE=redis)', (redis) => {
  jest.setTimeout(60_000);
  const servers = useRedisInstances(redis, [
    { ...ANONYMOUS_TOKENS_ENV, WORKERS: '2' },
    { ...ANONYMOUS_TOKENS_ENV, WORKERS: '0' },
  ]);
  const baseUrls = () => servers().map((server) => server.baseUrl);

  it('answers at most 10 × RATE_LIMIT_MAX requests a window for all the anonymous tokens one address uses', async () => {
    await expectAddressCapOnRequests(baseUrls(), '198.51.100.11');
  });

  it('leaves tokens minted with an API key to their own budget', async () => {
    await expectKeyTokenUnaffected(baseUrls(), '198.51.100.12');
  });
});
