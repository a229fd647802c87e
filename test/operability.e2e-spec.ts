import request from 'supertest';
import { useTestApp } from './utils/create-app';
import { sample } from './utils/observability';
import {
  requestJson,
  requestText,
  ServerProcess,
  spawnServer,
  useServer,
} from './utils/spawn-server';

// Request ids, JSON logs and cluster mode: what every route has. GET /health/live,
// /health/ready and /metrics on their own: their files in routes/.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('request ids (single process)', () => {
  const app = useTestApp();

  it('echoes a sane X-Request-Id and puts it in the problem body', async () => {
    const res = await request(app().getHttpServer())
      .post('/api/conversations')
      .set('X-Request-Id', 'trace-42.a:b')
      .set('Content-Type', 'application/json')
      .send('{bad');

    expect(res.status).toBe(400);
    expect(res.headers['x-request-id']).toBe('trace-42.a:b');
    expect(res.body).toMatchObject({ code: 'malformed_json', requestId: 'trace-42.a:b' });
  });

  it.each([
    ['with a space', 'has space'],
    ['too long', 'x'.repeat(129)],
    ['with a quote', 'a"b'],
  ])('replaces an X-Request-Id %s with a new UUID', async (_, sent) => {
    const res = await request(app().getHttpServer())
      .get('/api/conversations/unknown')
      .set('X-Request-Id', sent);

    expect(res.status).toBe(404);
    expect(res.headers['x-request-id']).toMatch(UUID);
    expect(res.body.requestId).toBe(res.headers['x-request-id']);
  });

  it('gives every request a fresh id when none is sent', async () => {
    const a = await request(app().getHttpServer()).get('/health/live');
    const b = await request(app().getHttpServer()).get('/health/live');

    expect(a.headers['x-request-id']).toMatch(UUID);
    expect(b.headers['x-request-id']).toMatch(UUID);
    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
  });
});

describe('JSON logs (built server, WORKERS=0, LOG_FORMAT=json)', () => {
  jest.setTimeout(30_000);
  let server: ServerProcess;

  beforeAll(async () => {
    server = await spawnServer({ WORKERS: '0', LOG_FORMAT: 'json' }, { waitUntilReady: false });
    await server.waitFor(/Listening on/);
  });
  afterAll(async () => {
    await server.stop();
  });

  it('writes one JSON object per line, with level, time and role', () => {
    const lines = server.output().trim().split('\n');
    const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(parsed.length).toBeGreaterThan(0);
    for (const line of parsed) {
      expect(line).toMatchObject({
        level: expect.any(String),
        role: 'server',
        pid: expect.any(Number),
      });
      expect(new Date(line.time as string).toISOString()).toBe(line.time);
    }
  });

  it('writes the request id sent in on the access log line of that request', async () => {
    const res = await requestText(server.baseUrl, 'POST', '/api/conversations', {
      body: [1],
      headers: { 'X-Request-Id': 'e2e-log-7' },
    });
    expect(res.status).toBe(400);
    expect(res.headers['x-request-id']).toBe('e2e-log-7');
    expect(JSON.parse(res.text)).toMatchObject({ requestId: 'e2e-log-7' });

    await server.waitFor(/"requestId":"e2e-log-7"/);
    const [line] = server.lines(/"requestId":"e2e-log-7"/).map((l) => JSON.parse(l) as object);
    expect(line).toMatchObject({
      level: 'log',
      role: 'server',
      context: 'Http',
      requestId: 'e2e-log-7',
      method: 'POST',
      route: '/api/conversations',
      status: 400,
      durationMs: expect.any(Number),
    });
  });
});

describe('cluster mode (built server, WORKERS=2)', () => {
  jest.setTimeout(60_000);
  const server = useServer({ WORKERS: '2' });

  /** The worker whose access log line carries this request id. */
  async function servedBy(requestId: string): Promise<string> {
    const pattern = new RegExp(`^\\[worker (\\d+)\\].*\\(request ${requestId}\\)$`);
    await server().waitFor(pattern);
    return pattern.exec(server().lines(pattern)[0])?.[1] ?? '';
  }

  /**
   * Sends `send(tag)` until both workers have served one (connections are shared out by the
   * primary, nearly but not strictly in turn); returns how many it sent.
   */
  async function untilBothWorkers(
    prefix: string,
    send: (requestId: string) => Promise<void>,
  ): Promise<number> {
    const workers = new Set<string>();
    let sent = 0;
    while (workers.size < 2 && sent < 30) {
      const requestId = `${prefix}-${sent++}`;
      await send(requestId);
      workers.add(await servedBy(requestId));
    }
    expect(workers.size).toBe(2);
    return sent;
  }

  it('answers live and ready from both workers', async () => {
    await untilBothWorkers('live', async (requestId) => {
      const res = await requestText(server().baseUrl, 'GET', '/health/live', {
        headers: { 'X-Request-Id': requestId },
      });
      expect(res.status).toBe(200);
    });
    await untilBothWorkers('ready', async (requestId) => {
      const res = await requestText(server().baseUrl, 'GET', '/health/ready', {
        headers: { 'X-Request-Id': requestId },
      });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.text)).toMatchObject({
        status: 'ok',
        details: { store: { status: 'up', kind: 'cluster-primary' } },
      });
    });
  });

  it('reports N requests spread over both workers, whichever worker serves the scrape', async () => {
    const id = (await requestJson<{ id: string }>(server().baseUrl, 'POST', '/api/conversations'))
      .body.id;
    const route = '/api/conversations/:conversationId/messages';
    const post = async (requestId: string) => {
      const res = await requestText(server().baseUrl, 'POST', `/api/conversations/${id}/messages`, {
        body: { sender: 'customer', content: requestId },
        headers: { 'X-Request-Id': requestId },
      });
      expect(res.status).toBe(201);
    };
    let N = await untilBothWorkers('post', post);
    for (; N < 40; N++) {
      await post(`more-${N}`);
    }

    await untilBothWorkers('scrape', async (requestId) => {
      const scrape = await requestText(server().baseUrl, 'GET', '/metrics', {
        headers: { 'X-Request-Id': requestId },
      });
      expect(scrape.status).toBe(200);
      expect(sample(scrape.text, 'http_requests_total', { route, status: '201' })).toBe(N);
      expect(sample(scrape.text, 'http_request_duration_seconds_count', { route })).toBe(N);
      expect(sample(scrape.text, 'chat_messages_stored')).toBe(N);
      expect(
        sample(scrape.text, 'chat_store_ipc_duration_seconds_count', {
          operation: 'appendMessage',
        }),
      ).toBe(N);
    });
  });

  it('counts a worker restart', async () => {
    const [pid] = server().workerPids();
    process.kill(pid, 'SIGKILL');
    await server().waitFor(/starting a replacement/);
    await server().waitFor(/\[worker \d+\].*Serving on port/, 3);

    const scrape = await requestText(server().baseUrl, 'GET', '/metrics');
    expect(scrape.status).toBe(200);
    expect(sample(scrape.text, 'chat_worker_restarts_total')).toBe(1);
  });
});
