import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import request from 'supertest';
import { useTestApp } from './utils/create-app';
import {
  requestJson,
  requestText,
  ServerProcess,
  spawnServer,
  useServer,
} from './utils/spawn-server';

const API_KEY = 'deploy-test-key-0123456789';

describe('security headers follow the transport', () => {
  describe('TRUST_PROXY unset', () => {
    const app = useTestApp();

    it('plain HTTP: no HSTS, no upgrade-insecure-requests; every other header stays', async () => {
      for (const path of ['/', '/docs', '/api/conversations/not-a-uuid']) {
        const res = await request(app().getHttpServer()).get(path);
        expect(res.headers['strict-transport-security']).toBeUndefined();
        const csp = String(res.headers['content-security-policy']);
        expect(csp).not.toContain('upgrade-insecure-requests');
        expect(csp).toContain("script-src 'self'");
        expect(csp).toContain("default-src 'self'");
        expect(res.headers['x-content-type-options']).toBe('nosniff');
        expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
        expect(res.headers['referrer-policy']).toBe('no-referrer');
      }
    });

    it('an untrusted X-Forwarded-Proto: https changes nothing', async () => {
      const res = await request(app().getHttpServer()).get('/').set('X-Forwarded-Proto', 'https');
      expect(res.headers['strict-transport-security']).toBeUndefined();
      expect(res.headers['content-security-policy']).not.toContain('upgrade-insecure-requests');
    });
  });

  describe('TRUST_PROXY=loopback (the test client is the proxy)', () => {
    const app = useTestApp({ env: { TRUST_PROXY: 'loopback' } });

    it('X-Forwarded-Proto: https gets HSTS and upgrade-insecure-requests', async () => {
      for (const path of ['/', '/docs', '/api/conversations/not-a-uuid']) {
        const res = await request(app().getHttpServer())
          .get(path)
          .set('X-Forwarded-Proto', 'https');
        expect(res.headers['strict-transport-security']).toBe(
          'max-age=31536000; includeSubDomains',
        );
        expect(res.headers['content-security-policy']).toContain('upgrade-insecure-requests');
        expect(res.headers['x-content-type-options']).toBe('nosniff');
      }
    });

    it('X-Forwarded-Proto: http, or none, gets neither', async () => {
      for (const proto of ['http', undefined]) {
        const req = request(app().getHttpServer()).get('/docs');
        const res = await (proto ? req.set('X-Forwarded-Proto', proto) : req);
        expect(res.headers['strict-transport-security']).toBeUndefined();
        expect(res.headers['content-security-policy']).not.toContain('upgrade-insecure-requests');
      }
    });
  });
});

/**
 * Sends `count` requests from this one client, `concurrency` at a time on keep-alive
 * connections; returns their statuses in the order they were sent.
 */
async function flood(
  server: ServerProcess,
  count: number,
  send: (agent: http.Agent) => Promise<number>,
  concurrency = 16,
): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses: number[] = new Array<number>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        statuses[i] = await send(agent);
      }
    }),
  );
  agent.destroy();
  return statuses;
}

const count = (statuses: number[], status: number) => statuses.filter((s) => s === status).length;

describe('rate-limit defaults (built server, RATE_LIMIT_MAX unset)', () => {
  jest.setTimeout(60_000);

  describe('open mode (API_KEYS unset): no per-address limit', () => {
    // RATE_LIMIT_MAX '' is unset: the server's default, not the helpers' 0.
    const server = useServer({ WORKERS: '2', RATE_LIMIT_MAX: '' });

    it('answers 1,500 requests from one client in a minute, none refused', async () => {
      const created = await requestJson<{ id: string }>(
        server().baseUrl,
        'POST',
        '/api/conversations',
      );
      expect(created.status).toBe(201);
      const path = `/api/conversations/${created.body.id}`;
      const statuses = await flood(server(), 1_500, async (agent) => {
        const res = await requestText(server().baseUrl, 'GET', path, {
          agent,
          headers: { 'X-Forwarded-For': '203.0.113.7' },
        });
        expect(res.headers['ratelimit-limit']).toBeUndefined();
        return res.status;
      });
      expect(count(statuses, 200)).toBe(1_500);
      // No limit, but the address still counts for event-stream places: warned once.
      // Once per process at most: two workers.
      const warnings = server().lines(/X-Forwarded-For but TRUST_PROXY is not set/).length;
      expect(warnings).toBeGreaterThanOrEqual(1);
      expect(warnings).toBeLessThanOrEqual(2);
    });
  });

  describe('with API_KEYS (one process): 600 for callers without a credential', () => {
    const server = useServer({
      WORKERS: '0',
      API_KEYS: API_KEY,
      PUBLIC_CONVERSATIONS: 'true',
      RATE_LIMIT_MAX: '',
    });

    it('refuses an anonymous flood at 600 while a key keeps working; warns once about TRUST_PROXY', async () => {
      const anonymous = (agent: http.Agent) =>
        requestText(server().baseUrl, 'GET', '/health/live', { agent }).then(() =>
          // Health probes are not counted: the flood goes to the API.
          requestText(server().baseUrl, 'POST', '/api/conversations', {
            agent,
            // A proxy in front that nobody told the server about.
            headers: { 'X-Forwarded-For': '198.51.100.23' },
          }).then((res) => res.status),
        );
      const statuses = await flood(server(), 650, anonymous);
      expect(count(statuses, 201)).toBe(600);
      expect(count(statuses, 429)).toBe(50);

      const withKey = await flood(server(), 50, (agent) =>
        requestText(server().baseUrl, 'POST', '/api/conversations', {
          agent,
          headers: { Authorization: `Bearer ${API_KEY}`, 'X-Forwarded-For': '198.51.100.23' },
        }).then((res) => res.status),
      );
      expect(withKey).toEqual(Array(50).fill(201));
      expect((await requestText(server().baseUrl, 'POST', '/api/conversations')).status).toBe(429);

      const warnings = server().lines(/X-Forwarded-For but TRUST_PROXY is not set/);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/WARN/);
      expect(warnings[0]).toMatch(/shares one rate limit/);
    });
  });

  describe('with API_KEYS and TRUST_PROXY set', () => {
    const server = useServer({
      WORKERS: '0',
      API_KEYS: API_KEY,
      TRUST_PROXY: 'loopback',
      RATE_LIMIT_MAX: '',
    });

    it('counts each forwarded client on its own, and does not warn', async () => {
      const statuses = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          requestText(server().baseUrl, 'GET', '/api/conversations/not-a-uuid', {
            headers: { 'X-Forwarded-For': `198.51.100.${i}` },
          }).then((res) => [res.status, res.headers['ratelimit-remaining']]),
        ),
      );
      expect(statuses).toEqual(Array(20).fill([401, '599']));
      expect(server().lines(/TRUST_PROXY/)).toEqual([]);
    });

    it('counts each forwarded client on its own when they come over one connection', async () => {
      // One kept-alive connection, one proxy: the address is the request's, not the connection's.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const remaining = [];
        for (const client of ['198.51.100.200', '198.51.100.201', '198.51.100.200']) {
          const res = await requestText(server().baseUrl, 'GET', '/api/conversations/not-a-uuid', {
            agent,
            headers: { 'X-Forwarded-For': client },
          });
          remaining.push(res.headers['ratelimit-remaining']);
        }
        expect(remaining).toEqual(['599', '599', '598']);
      } finally {
        agent.destroy();
      }
    });
  });
});

const MAIN = path.resolve(__dirname, '../dist/main.js');
const ANSI = /\x1b\[[0-9;]*m/g;

describe('start-up output', () => {
  jest.setTimeout(60_000);

  it('on a pipe: JSON lines, no module or route lines at LOG_LEVEL=log, the summary last', async () => {
    // LOG_FORMAT '' is unset: the default for a pipe.
    const server = await spawnServer({ WORKERS: '2', LOG_FORMAT: '' }, { waitUntilReady: false });
    try {
      await server.waitFor(/Listening on/);
      const lines = server.output().trim().split('\n');
      const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(parsed.map((line) => line.context)).not.toEqual(
        expect.arrayContaining(['RouterExplorer']),
      );
      expect(parsed.filter((line) => line.context === 'InstanceLoader')).toEqual([]);
      expect(
        parsed.filter((line) => line.message === 'Serving on port ' + server.port),
      ).toHaveLength(2);
      const last = parsed[parsed.length - 1];
      expect(last).toMatchObject({ role: 'primary', level: 'log' });
      expect(last.message).toBe(
        `Listening on http://127.0.0.1:${server.port}: 2 workers, in-memory store; ` +
          `Swagger UI at http://127.0.0.1:${server.port}/docs, console at http://127.0.0.1:${server.port}/`,
      );
      // Fewer than a screenful for a person to read.
      expect(lines.length).toBeLessThanOrEqual(5);
    } finally {
      await server.stop();
    }
  });

  it('at LOG_LEVEL=debug the route lines are there', async () => {
    const server = await spawnServer(
      { WORKERS: '0', LOG_FORMAT: 'json', LOG_LEVEL: 'debug' },
      { waitUntilReady: false },
    );
    try {
      await server.waitFor(/Listening on/);
      const mapped = server.lines(/Mapped \{\/api\/conversations, POST\} route/);
      expect(mapped).toHaveLength(1);
      expect(JSON.parse(mapped[0])).toMatchObject({ level: 'debug', context: 'RouterExplorer' });
    } finally {
      await server.stop();
    }
  });

  it('on a terminal (a pseudo-terminal through script): pretty lines, the summary last', async () => {
    const port = await import('./utils/spawn-server').then((m) => m.freePort());
    // `script` gives the server a pseudo-terminal for stdout, as a person's shell would.
    const child = spawn(
      'script',
      ['-q', '-e', '-c', `"${process.execPath}" "${MAIN}"`, '/dev/null'],
      {
        env: {
          PATH: process.env.PATH,
          HOST: '127.0.0.1',
          PORT: String(port),
          WORKERS: '2',
          RATE_LIMIT_MAX: '0',
          TERM: 'xterm',
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const lines = () =>
      output
        .replace(ANSI, '')
        .split(/\r?\n/)
        .map((line) => line.trim())
        .filter(Boolean);
    try {
      const deadline = Date.now() + 30_000;
      while (!lines().some((line) => line.includes('Listening on')) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const all = lines();
      const last = all[all.length - 1];
      expect(last).toMatch(
        new RegExp(
          `^\\[primary\\] \\d+ .* LOG \\[Primary\\] Listening on http://127\\.0\\.0\\.1:${port}: 2 workers, in-memory store; ` +
            `Swagger UI at http://127\\.0\\.0\\.1:${port}/docs, console at http://127\\.0\\.0\\.1:${port}/$`,
        ),
      );
      expect(all.filter((line) => /^\[worker \d+\] \d+ .*Serving on port/.test(line))).toHaveLength(
        2,
      );
      expect(all.filter((line) => line.startsWith('{'))).toEqual([]);
      expect(all.filter((line) => /Mapped|dependencies initialized/.test(line))).toEqual([]);
      // Colours, as ConsoleLogger gives a terminal.
      expect(output).toMatch(ANSI);
    } finally {
      const primary = /\[primary\] (\d+)/.exec(output.replace(ANSI, ''))?.[1];
      if (primary) {
        process.kill(Number(primary), 'SIGTERM');
      } else {
        child.kill('SIGTERM');
      }
      await exited;
    }
  });
});
