import type { LookupAddress } from 'node:dns';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, LookupFunction } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { HttpWebhookSender, type HttpWebhookSenderOptions } from './http-webhook-sender';
import { newSecret } from './signature';
import type { WebhookEvent } from './webhook.model';

const EVENT: WebhookEvent = {
  id: 'evt_sender_1',
  type: 'message.created',
  at: Date.now(),
  body: JSON.stringify({
    id: 'evt_sender_1',
    type: 'message.created',
    data: { text: 'héllo "ü" 👋' },
  }),
};

/** A public address (example.com's) that no test ever connects to. */
const PUBLIC = '93.184.215.14';

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
}

interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** Requests that came in, answered or not (a hanging handler still counts). */
  arrived: number;
  connections: number;
}

const servers: Server[] = [];
const senders: HttpWebhookSender[] = [];

/** A receiver on 127.0.0.1; `answer` handles each request once its body is read. */
async function receiver(
  answer: (res: ServerResponse, req: IncomingMessage) => void = (res) => res.writeHead(204).end(),
): Promise<Receiver> {
  const state = { received: [] as Received[], arrived: 0, connections: 0 };
  const server = createServer((req, res) => {
    state.arrived += 1;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      state.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      answer(res, req);
    });
  });
  server.on('connection', () => (state.connections += 1));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, { url: `http://127.0.0.1:${port}/hooks?x=1`, port });
}

function sender(options: Partial<HttpWebhookSenderOptions> = {}): HttpWebhookSender {
  const made = new HttpWebhookSender({ timeoutMs: 5_000, allowPrivateNetworks: true, ...options });
  senders.push(made);
  return made;
}

/** A lookup answering `answers` in turn (the last one again once they run out). */
function scriptedLookup(...answers: LookupAddress[][]): LookupFunction & { calls: number } {
  const lookup = Object.assign(
    ((_hostname, options, callback) => {
      const answer = answers[Math.min(lookup.calls, answers.length - 1)];
      lookup.calls += 1;
      setImmediate(() => {
        if (options.all) {
          callback(null, answer);
        } else {
          callback(null, answer[0].address, answer[0].family);
        }
      });
    }) as LookupFunction,
    { calls: 0 },
  );
  return lookup;
}

const v4 = (address: string): LookupAddress => ({ address, family: 4 });

async function until(check: () => boolean, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error('condition not met in time');
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

afterEach(async () => {
  for (const made of senders.splice(0)) {
    made.close();
  }
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

describe('HttpWebhookSender', () => {
  it('posts the exact body, signed with every secret, which a receiver verifies', async () => {
    const target = await receiver();
    const [old, current] = [newSecret(), newSecret()];
    const outcome = await sender().send(target.url, EVENT, [current, old]);

    expect(outcome).toEqual({
      ok: true,
      statusCode: 204,
      durationMs: expect.any(Number),
      error: null,
    });
    expect(outcome.durationMs).toBeGreaterThan(0);
    expect(target.received).toHaveLength(1);
    const { headers, body } = target.received[0];
    expect(body).toBe(EVENT.body);
    expect(headers['content-type']).toBe('application/json');
    expect(headers['user-agent']).toBe('chat-server-webhooks/1');
    expect(headers['content-length']).toBe(String(Buffer.byteLength(EVENT.body)));
    expect(headers['webhook-id']).toBe(EVENT.id);
    const signed = headers as Record<string, string>;
    expect(new Webhook(old).verify(body, signed)).toEqual(JSON.parse(EVENT.body));
    expect(new Webhook(current).verify(body, signed)).toEqual(JSON.parse(EVENT.body));
    expect(() => new Webhook(newSecret()).verify(body, signed)).toThrow();
  });

  it('signs with the attempt time from its clock', async () => {
    const target = await receiver();
    const now = Date.parse('2031-05-06T07:08:09.999Z');
    await sender({ now: () => now }).send(target.url, EVENT, [newSecret()]);
    expect(target.received[0].headers['webhook-timestamp']).toBe(String(Math.floor(now / 1000)));
  });

  it('keeps connections alive between attempts', async () => {
    const target = await receiver((res) => res.writeHead(200).end('ok'));
    const made = sender();
    for (let i = 0; i < 3; i++) {
      expect((await made.send(target.url, EVENT, [newSecret()])).ok).toBe(true);
    }
    expect(target.received).toHaveLength(3);
    expect(target.connections).toBe(1);
  });

  it('reports a 500 as a failure with its status', async () => {
    const target = await receiver((res) => res.writeHead(500).end('broken'));
    const outcome = await sender().send(target.url, EVENT, [newSecret()]);
    expect(outcome).toMatchObject({ ok: false, statusCode: 500, error: 'status 500' });
    expect(outcome.retryAfterMs).toBeUndefined();
  });

  it('never follows a redirect: a 3xx is a failure and its target receives nothing', async () => {
    const elsewhere = await receiver();
    const target = await receiver((res) => res.writeHead(302, { location: elsewhere.url }).end());
    const outcome = await sender().send(target.url, EVENT, [newSecret()]);
    expect(outcome).toMatchObject({ ok: false, statusCode: 302, error: 'status 302' });
    expect(elsewhere.arrived).toBe(0);
  });

  it('reports a 410 by its status (the policy disables the endpoint)', async () => {
    const target = await receiver((res) => res.writeHead(410).end());
    const outcome = await sender().send(target.url, EVENT, [newSecret()]);
    expect(outcome).toMatchObject({ ok: false, statusCode: 410, error: 'status 410' });
  });

  it('reads Retry-After on a 429 in seconds and on a 503 as an HTTP date', async () => {
    const now = Date.parse('2031-01-01T00:00:00Z');
    const seconds = await receiver((res) => res.writeHead(429, { 'retry-after': '7' }).end());
    const dated = await receiver((res) =>
      res.writeHead(503, { 'retry-after': new Date(now + 120_000).toUTCString() }).end(),
    );
    const ignored = await receiver((res) => res.writeHead(500, { 'retry-after': '7' }).end());
    const made = sender({ now: () => now });

    expect(await made.send(seconds.url, EVENT, [newSecret()])).toMatchObject({
      ok: false,
      statusCode: 429,
      error: 'status 429',
      retryAfterMs: 7_000,
    });
    expect(await made.send(dated.url, EVENT, [newSecret()])).toMatchObject({
      statusCode: 503,
      retryAfterMs: 120_000,
    });
    expect((await made.send(ignored.url, EVENT, [newSecret()])).retryAfterMs).toBeUndefined();
  });

  it('gives up after timeoutMs on a receiver that never answers', async () => {
    const target = await receiver(() => undefined);
    const started = Date.now();
    const outcome = await sender({ timeoutMs: 200 }).send(target.url, EVENT, [newSecret()]);
    const took = Date.now() - started;
    expect(outcome).toMatchObject({ ok: false, statusCode: null, error: 'timeout' });
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(1_000);
    expect(outcome.durationMs).toBeGreaterThanOrEqual(190);
  });

  it('times out a receiver that answers but never finishes its body', async () => {
    const target = await receiver((res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
    });
    const started = Date.now();
    const outcome = await sender({ timeoutMs: 200 }).send(target.url, EVENT, [newSecret()]);
    expect(outcome).toMatchObject({ ok: false, statusCode: 200, error: 'timeout' });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('reads at most 1 KiB of an answer, so a big or endless body does not hang', async () => {
    const target = await receiver((res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      // 64 KiB and then nothing more, never the end.
      res.write('x'.repeat(64 * 1024));
    });
    const started = Date.now();
    const outcome = await sender({ timeoutMs: 5_000 }).send(target.url, EVENT, [newSecret()]);
    expect(outcome).toMatchObject({ ok: true, statusCode: 200, error: null });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('reports a refused connection by its code', async () => {
    const closed = await receiver();
    const { url } = closed;
    await new Promise<void>((resolve) => servers.pop()!.close(() => resolve()));
    const outcome = await sender().send(url, EVENT, [newSecret()]);
    expect(outcome).toMatchObject({ ok: false, statusCode: null, error: 'ECONNREFUSED' });
  });

  it('reports a name that does not resolve by its code', async () => {
    const lookup: LookupFunction = (hostname, _options, callback) =>
      setImmediate(() =>
        callback(
          Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }),
          '',
        ),
      );
    const outcome = await sender({ lookup }).send('http://nowhere.invalid/', EVENT, [newSecret()]);
    expect(outcome).toMatchObject({ ok: false, statusCode: null, error: 'ENOTFOUND' });
  });

  it('refuses loopback, by name or number, unless private networks are allowed', async () => {
    const target = await receiver();
    const strict = sender({ allowPrivateNetworks: false });
    const secret = newSecret();
    const hosts = ['localhost', '127.0.0.1', '[::1]', '[::ffff:127.0.0.1]', '2130706433'];
    const urls = [
      ...hosts.map((host) => `http://${host}:${target.port}/hooks`),
      // The https agent checks its addresses the same way.
      `https://localhost:${target.port}/hooks`,
      `https://127.0.0.1:${target.port}/hooks`,
    ];
    for (const url of urls) {
      const outcome = await strict.send(url, EVENT, [secret]);
      expect(outcome).toMatchObject({ ok: false, statusCode: null });
      expect(outcome.error).toMatch(/^address refused: a loopback, private or link-local address/);
      expect(outcome.error).not.toContain(secret);
    }
    expect(target.arrived).toBe(0);
    // The same receiver, allowed.
    expect((await sender().send(target.url, EVENT, [secret])).ok).toBe(true);
  });

  it('refuses a cloud metadata address even when private networks are allowed', async () => {
    const made = sender({
      allowPrivateNetworks: true,
      lookup: scriptedLookup([v4('169.254.169.254')]),
    });
    for (const url of [
      'http://169.254.169.254/latest/meta-data/',
      'http://[::ffff:169.254.169.254]/',
      'http://metadata.example.test/',
    ]) {
      expect(await made.send(url, EVENT, [newSecret()])).toMatchObject({
        ok: false,
        statusCode: null,
        error: 'address refused: a cloud metadata address',
      });
    }
  });

  it('delivers to a name its lookup resolves, in either form of answer', async () => {
    const target = await receiver();
    const lookup = scriptedLookup([v4('127.0.0.1')]);
    const outcome = await sender({ lookup }).send(
      `http://hooks.example.test:${target.port}/x`,
      EVENT,
      [newSecret()],
    );
    expect(outcome.ok).toBe(true);
    expect(lookup.calls).toBeGreaterThan(0);
    expect(target.received[0].headers.host).toBe(`hooks.example.test:${target.port}`);

    // A resolver that answers one address even when asked for all.
    const single: LookupFunction = (_hostname, _options, callback) =>
      setImmediate(() => callback(null, '127.0.0.1', 4));
    const again = await sender({ lookup: single }).send(
      `http://hooks.example.test:${target.port}/x`,
      EVENT,
      [newSecret()],
    );
    expect(again.ok).toBe(true);
  });

  it('checks the addresses when connecting, so a name rebound to loopback is refused', async () => {
    const target = await receiver();
    const lookup = scriptedLookup([v4(PUBLIC)], [v4('127.0.0.1')]);
    const url = `http://rebind.example.test:${target.port}/hooks`;
    // The first answer is what a check when the endpoint was made would have seen.
    const first = await new Promise<string>((resolve) =>
      lookup('rebind.example.test', { all: true }, (_err, answer) =>
        resolve((answer as LookupAddress[])[0].address),
      ),
    );
    expect(first).toBe(PUBLIC);

    const outcome = await sender({ allowPrivateNetworks: false, lookup }).send(url, EVENT, [
      newSecret(),
    ]);
    expect(outcome).toMatchObject({ ok: false, statusCode: null });
    expect(outcome.error).toMatch(/^address refused: /);
    expect(target.arrived).toBe(0);
  });

  it('refuses a name when any of its addresses is refused, not only the first', async () => {
    const target = await receiver();
    const lookup = scriptedLookup([v4(PUBLIC), v4('127.0.0.1')]);
    const outcome = await sender({ allowPrivateNetworks: false, lookup }).send(
      `http://mixed.example.test:${target.port}/hooks`,
      EVENT,
      [newSecret()],
    );
    expect(outcome.error).toMatch(/^address refused: a loopback/);
    expect(target.arrived).toBe(0);
  });

  it('stops an attempt when its signal aborts', async () => {
    const target = await receiver(() => undefined);
    const made = sender();
    const controller = new AbortController();
    const pending = made.send(target.url, EVENT, [newSecret()], controller.signal);
    await until(() => target.arrived === 1);
    controller.abort();
    expect(await pending).toMatchObject({ ok: false, statusCode: null, error: 'aborted' });

    const aborted = AbortSignal.abort();
    expect(await made.send(target.url, EVENT, [newSecret()], aborted)).toMatchObject({
      ok: false,
      error: 'aborted',
    });
    expect(target.arrived).toBe(1);
  });

  it('never throws: a bad URL or secret is an outcome', async () => {
    const made = sender();
    expect((await made.send('not a url', EVENT, [newSecret()])).error).toBe('invalid url');
    expect((await made.send('ftp://example.test/', EVENT, [newSecret()])).error).toBe(
      'unsupported protocol',
    );
    const target = await receiver();
    const outcome = await made.send(target.url, EVENT, ['whsec_short']);
    expect(outcome).toMatchObject({ ok: false, error: 'signing failed' });
    expect(outcome.error).not.toContain('whsec_short');
    expect(target.arrived).toBe(0);
  });
});
