import { connect } from 'node:net';
import request from 'supertest';
import { useTestApp } from './utils/create-app';
import { requestJson, useServer } from './utils/spawn-server';

// The HTTP server itself: response headers, CORS, slow clients. Hostile message bodies:
// routes/post-conversations-id-messages.e2e-spec.ts.

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
