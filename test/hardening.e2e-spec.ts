import fc from 'fast-check';
import { connect } from 'node:net';
import request from 'supertest';
import { useTestApp } from './utils/create-app';
import { requestJson, useServer } from './utils/spawn-server';

const ORIGIN = 'https://app.example.com';

describe('response headers (helmet, caching)', () => {
  const app = useTestApp();

  it("sends helmet's headers and no X-Powered-By", async () => {
    const res = await request(app().getHttpServer()).post('/api/conversations');

    expect(res.status).toBe(201);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(res.headers['x-powered-by']).toBeUndefined();
  });

  it('marks no-store exactly what lies under /api (any case), and nothing else', async () => {
    const server = app().getHttpServer();
    const upper = await request(server).get('/API/conversations/not-a-uuid');
    const query = await request(server).get('/api?x=1');
    const beside = await request(server).get('/apix');
    const docs = await request(server).get('/docs-json');

    expect(upper.headers['cache-control']).toBe('no-store');
    expect(query.headers['cache-control']).toBe('no-store');
    expect(beside.status).toBe(404);
    expect(beside.headers['cache-control']).toBeUndefined();
    expect(docs.status).toBe(200);
    expect(docs.headers['cache-control']).toBeUndefined();
    // helmet's headers on every answer, the API's or not.
    for (const res of [upper, beside, docs]) {
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
    }
  });

  it('marks API answers, errors included, Cache-Control: no-store', async () => {
    const server = app().getHttpServer();
    const created = await request(server).post('/api/conversations');
    const missing = await request(server).get('/api/conversations/not-a-uuid');

    expect(created.headers['cache-control']).toBe('no-store');
    expect(missing.status).toBe(404);
    expect(missing.headers['cache-control']).toBe('no-store');
  });

  it('answers no CORS preflight when CORS_ORIGINS is empty (the default)', async () => {
    const res = await request(app().getHttpServer())
      .options('/api/conversations')
      .set('Origin', ORIGIN)
      .set('Access-Control-Request-Method', 'POST');

    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('CORS_ORIGINS', () => {
  const app = useTestApp({ env: { CORS_ORIGINS: `${ORIGIN},http://localhost:5173` } });

  it('allows a listed origin, with the headers the API uses', async () => {
    const preflight = await request(app().getHttpServer())
      .options('/api/conversations')
      .set('Origin', ORIGIN)
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'content-type,idempotency-key');

    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(preflight.headers['access-control-allow-headers']).toContain('Idempotency-Key');

    const created = await request(app().getHttpServer())
      .post('/api/conversations')
      .set('Origin', ORIGIN);
    expect(created.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(created.headers['access-control-expose-headers']).toContain('X-Request-Id');
  });

  it('does not allow another origin', async () => {
    const res = await request(app().getHttpServer())
      .post('/api/conversations')
      .set('Origin', 'https://evil.example.net');

    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('hostile input', () => {
  const app = useTestApp();

  const history = async (id: string) =>
    (await request(app().getHttpServer()).get(`/api/conversations/${id}`)).body as {
      messageCount: number;
    };

  /** Sends raw bytes as a message body; the answer must be a 4xx problem and change nothing. */
  async function expectRefused(
    id: string,
    body: string | Buffer,
    contentType = 'application/json',
  ) {
    const before = await history(id);
    const res = await request(app().getHttpServer())
      .post(`/api/conversations/${id}/messages`)
      .set('Content-Type', contentType)
      .send(body);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(await history(id)).toEqual(before);
    return res;
  }

  let id: string;
  beforeAll(async () => {
    id = ((await request(app().getHttpServer()).post('/api/conversations')).body as { id: string })
      .id;
  });

  it('refuses any JSON value that is not a valid message, and stores nothing', async () => {
    const notAMessage = fc
      .jsonValue({ maxDepth: 4 })
      .filter(
        (value) =>
          !(
            typeof value === 'object' &&
            value !== null &&
            !Array.isArray(value) &&
            (value as { sender?: unknown }).sender !== undefined &&
            typeof (value as { content?: unknown }).content === 'string'
          ),
      );
    await fc.assert(
      fc.asyncProperty(notAMessage, async (value) => {
        await expectRefused(id, JSON.stringify(value));
      }),
      { numRuns: 150 },
    );
  });

  it.each([
    ['__proto__', '{"__proto__":{"polluted":true},"sender":"agent","content":"x"}'],
    [
      'constructor.prototype',
      '{"constructor":{"prototype":{"polluted":true}},"sender":"agent","content":"x"}',
    ],
    ['prototype', '{"prototype":{"polluted":true},"sender":"agent","content":"x"}'],
  ])('refuses a %s key without polluting any prototype', async (_, body) => {
    await expectRefused(id, body);
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect((Object.prototype as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it('refuses deeply nested JSON before anything walks it', async () => {
    const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
    expect((await expectRefused(id, deep)).body).toMatchObject({
      code: 'malformed_json',
      detail: 'The body nests objects or arrays more than 32 deep.',
    });
    const deepObject = `{"sender":"agent","content":"x","extra":${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}}`;
    expect((await expectRefused(id, deepObject)).status).toBe(400);
    // Brackets inside strings do not count.
    const res = await request(app().getHttpServer())
      .post(`/api/conversations/${id}/messages`)
      .send({ sender: 'agent', content: '[[[[{{{{'.repeat(100) });
    expect(res.status).toBe(201);
  });

  it.each([
    ['text/plain', 'hello'],
    ['application/x-www-form-urlencoded', 'sender=agent&content=x'],
    [
      'multipart/form-data; boundary=x',
      '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--',
    ],
    ['application/xml', '<message/>'],
  ])('refuses a %s body', async (contentType, body) => {
    const res = await expectRefused(id, body, contentType);
    expect(res.status).toBe(415);
  });

  it('refuses invalid UTF-8 and lone surrogates', async () => {
    const invalidUtf8 = Buffer.concat([
      Buffer.from('{"sender":"agent","content":"'),
      Buffer.from([0xc3, 0x28, 0xff]),
      Buffer.from('"}'),
    ]);
    const res = await expectRefused(id, invalidUtf8);
    expect(res.status).toBe(400);
    const lone = await expectRefused(id, '{"sender":"agent","content":"a\\ud800b"}');
    expect(lone.body).toMatchObject({
      errors: [{ field: 'content', message: 'content must be valid Unicode text' }],
    });
  });

  it('refuses a body that is only whitespace, null, or a bare string', async () => {
    for (const body of ['null', '"text"', '42', 'true', '[]']) {
      await expectRefused(id, body);
    }
  });
});

describe('slow clients (built server, WORKERS=2, HEADERS_TIMEOUT_MS=2000)', () => {
  jest.setTimeout(30_000);
  const server = useServer({
    WORKERS: '2',
    HEADERS_TIMEOUT_MS: '2000',
    REQUEST_TIMEOUT_MS: '4000',
  });

  it('serves a normal request while 50 clients send a header byte per second, and cuts them off', async () => {
    const { port } = server();
    const slow = Array.from({ length: 50 }, () => {
      const socket = connect(port, '127.0.0.1');
      socket.setEncoding('utf8');
      let answer = '';
      socket.on('data', (chunk: string) => (answer += chunk));
      socket.on('error', () => undefined);
      socket.write('GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
      const drip = setInterval(() => socket.write('a'), 1_000);
      const closed = new Promise<number>((resolve) => {
        const opened = Date.now();
        socket.on('close', () => {
          clearInterval(drip);
          resolve(Date.now() - opened);
        });
      });
      return { socket, closed, answer: () => answer };
    });
    await new Promise((resolve) => setTimeout(resolve, 500));

    const started = Date.now();
    const normal = await requestJson(server().baseUrl, 'POST', '/api/conversations');
    expect(normal.status).toBe(201);
    expect(Date.now() - started).toBeLessThan(1_000);

    const lifetimes = await Promise.all(slow.map((client) => client.closed));
    // headersTimeout 2 s, checked every second: cut off within about 3 s, surely within 6.
    expect(Math.max(...lifetimes)).toBeLessThan(6_000);
    expect(slow.every((client) => client.answer().startsWith('HTTP/1.1 408'))).toBe(true);
  });
});
