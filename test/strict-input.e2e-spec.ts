import { LoggerService } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { ConversationRepository } from '../src/conversations/conversation.repository';
import { InMemoryConversationRepository } from '../src/conversations/repositories/memory/in-memory-conversation.repository';
import { useTestApp } from './utils/create-app';

const API_KEY = 'backend-key-0123456789abcdef';
const bearer = { Authorization: `Bearer ${API_KEY}` };
const MESSAGE = JSON.stringify({ sender: 'agent', content: 'hi' });

/** superagent would JSON.stringify a Buffer sent as JSON: send the bytes as they are. */
const asIs = (body: unknown) => body as string;

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

function expectProblem(res: Answer, status: number, code: string, detail?: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, code, ...(detail ? { detail } : {}) });
}

/** `text` in UTF-7 (RFC 2152), every character but letters and digits base64-encoded. */
function utf7(text: string): Buffer {
  const encoded = [...text].map((c) =>
    /[A-Za-z0-9 ]/.test(c)
      ? c
      : `+${Buffer.from(c, 'utf16le').swap16().toString('base64').replace(/=+$/, '')}-`,
  );
  return Buffer.from(encoded.join(''));
}

function utf32le(text: string): Buffer {
  const points = [...text].map((c) => c.codePointAt(0) ?? 0);
  const out = Buffer.alloc(points.length * 4);
  points.forEach((point, i) => out.writeUInt32LE(point, i * 4));
  return out;
}

describe('JSON bodies: UTF-8 only, depth checked on what is parsed', () => {
  const app = useTestApp();
  const http = () => request(app().getHttpServer());
  let id: string;

  beforeAll(async () => {
    id = ((await http().post('/api/conversations')).body as { id: string }).id;
  });

  const messageCount = async () =>
    ((await http().get(`/api/conversations/${id}`)).body as { messageCount: number }).messageCount;

  const post = (
    contentType: string,
    body: string | Buffer,
    path = `/api/conversations/${id}/messages`,
  ) => http().post(path).set('Content-Type', contentType).serialize(asIs).send(body);

  it.each([
    ['utf-16', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(MESSAGE, 'utf16le')])],
    ['utf-16le', Buffer.from(MESSAGE, 'utf16le')],
    ['UTF-16BE', Buffer.from(MESSAGE, 'utf16le').swap16()],
    ['utf-32', utf32le(MESSAGE)],
    ['utf-7', utf7(MESSAGE)],
    ['latin1', Buffer.from(MESSAGE, 'latin1')],
  ])('415 unsupported_media_type for charset=%s; nothing stored', async (charset, body) => {
    const before = await messageCount();
    const res = await post(`application/json; charset=${charset}`, body);
    expectProblem(res, 415, 'unsupported_media_type', 'The body must be JSON encoded as UTF-8.');
    expect(await messageCount()).toBe(before);
  });

  it.each(['utf8', 'UTF-8', 'utf-8', 'Utf8', '"utf-8"'])('accepts charset=%s', async (charset) => {
    const res = await post(`application/json; charset=${charset}`, MESSAGE);
    expect(res.status).toBe(201);
  });

  it('accepts a content type with an empty parameter (RFC 9110), and none at all', async () => {
    expect((await post('application/json;', MESSAGE)).status).toBe(201);
    expect((await post('application/json', MESSAGE)).status).toBe(201);
  });

  it('415 for a content type whose parameters do not parse', async () => {
    const res = await post('application/json; charset', MESSAGE);
    expectProblem(res, 415, 'unsupported_media_type');
  });

  describe('deep nesting the byte scan could not see in another charset: 4xx, never 500', () => {
    // UTF-7 writes `[` as `+AFs-` (and `]` as itself): no opening bracket byte at all.
    const utf7Deep = Buffer.from(
      `{"sender":"agent","content":"x","extra":${'+AFs-'.repeat(10_000)}${']'.repeat(10_000)}}`,
    );
    // In UTF-16LE, "\u0122" is the bytes 22 01: a quote byte the scan takes for a string.
    const utf16Deep = Buffer.from(
      `{"sender":"agent","content":"\u0122","extra":${'['.repeat(15_000)}${']'.repeat(15_000)}}`,
      'utf16le',
    );
    const cases = [
      ['UTF-7', 'application/json; charset=utf-7', utf7Deep],
      ['UTF-7 labelled UTF-8', 'application/json', utf7Deep],
      ['UTF-16LE', 'application/json; charset=utf-16le', utf16Deep],
      ['UTF-16', 'application/json; charset=utf-16', utf16Deep],
      ['UTF-16LE labelled UTF-8', 'application/json; charset=utf-8', utf16Deep],
    ] as const;

    it.each(cases)('%s', async (_, contentType, body) => {
      const answers: { path: string; key: boolean; status: number }[] = [];
      for (const path of ['/api/conversations', `/api/conversations/${id}/messages`]) {
        for (const key of [false, true]) {
          const before = await messageCount();
          let req = http().post(path).set('Content-Type', contentType);
          if (key) {
            req = req.set('Idempotency-Key', randomUUID());
          }
          const res = await req.serialize(asIs).send(body);
          answers.push({ path, key, status: res.status });
          expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
          expect(await messageCount()).toBe(before);
        }
      }
      expect(answers.filter(({ status }) => status < 400 || status >= 500)).toEqual([]);
    });
  });

  it('answers an unknown route 404 whatever its body', async () => {
    for (const [contentType, body] of [
      ['text/plain', 'hello'],
      ['application/json', '{"a":'],
      ['application/json; charset=utf-16', MESSAGE],
    ]) {
      expectProblem(await post(contentType, body, '/api/nope'), 404, 'not_found');
    }
  });
});

describe('order: the rate limit, then access, then the body (RATE_LIMIT_MAX=3)', () => {
  const app = useTestApp({ env: { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '60000' } });
  const http = () => request(app().getHttpServer());

  it('counts bad bodies, and answers a blocked caller 429 whatever its body', async () => {
    const malformed = () =>
      http().post('/api/conversations').set('Content-Type', 'application/json').send('{"a":');
    for (let i = 0; i < 3; i++) {
      expectProblem(await malformed(), 400, 'malformed_json');
    }
    expectProblem(await malformed(), 429, 'rate_limited');
    const notJson = await http()
      .post('/api/conversations')
      .set('Content-Type', 'text/plain')
      .send('hello');
    expectProblem(notJson, 429, 'rate_limited');
    const utf16 = await http()
      .post('/api/conversations')
      .set('Content-Type', 'application/json; charset=utf-16le')
      .serialize(asIs)
      .send(Buffer.from('{}', 'utf16le'));
    expectProblem(utf16, 429, 'rate_limited');
  });
});

describe('order: access before the body (API_KEYS set)', () => {
  const app = useTestApp({ env: { API_KEYS: API_KEY } });
  const http = () => request(app().getHttpServer());
  let id: string;
  let customerToken: string;

  beforeAll(async () => {
    const created = await http().post('/api/conversations').set(bearer);
    ({ id, customerToken } = created.body as { id: string; customerToken: string });
  });

  const messageCount = async () =>
    (
      (await http().get(`/api/conversations/${id}`).set(bearer)).body as {
        messageCount: number;
      }
    ).messageCount;

  it.each([
    ['a malformed body', 'application/json', '{"a":'],
    ['a non-JSON content type', 'text/plain', 'hello'],
    ['a UTF-16 body', 'application/json; charset=utf-16le', MESSAGE],
    ['a body nested 20,000 deep', 'application/json', '['.repeat(20_000)],
  ])('401 without a credential for %s', async (_, contentType, body) => {
    for (const path of ['/api/conversations', `/api/conversations/${id}/messages`]) {
      const res = await http().post(path).set('Content-Type', contentType).send(body);
      expectProblem(res, 401, 'unauthorized');
    }
    expect(await messageCount()).toBe(0);
  });

  it('401 with a wrong credential for a malformed body', async () => {
    const res = await http()
      .post(`/api/conversations/${id}/messages`)
      .set({ Authorization: 'Bearer not-a-key', 'Content-Type': 'application/json' })
      .send('{"a":');
    expectProblem(res, 401, 'unauthorized');
  });

  it('a customer token: 403 posting as agent, 400 for a malformed body, 415 for another type; nothing stored', async () => {
    const asCustomer = { Authorization: `Bearer ${customerToken}` };
    const post = (contentType: string, body: string) =>
      http()
        .post(`/api/conversations/${id}/messages`)
        .set({ ...asCustomer, 'Content-Type': contentType })
        .send(body);
    expectProblem(await post('application/json', MESSAGE), 403, 'sender_not_allowed');
    expectProblem(await post('application/json', '{"sender":'), 400, 'malformed_json');
    expectProblem(await post('text/plain', MESSAGE), 415, 'unsupported_media_type');
    expect(await messageCount()).toBe(0);
    const ok = await post('application/json', JSON.stringify({ sender: 'customer', content: 'x' }));
    expect(ok.status).toBe(201);
  });

  it('a key: 400 for a malformed body, 415 for another type, once authorized', async () => {
    const post = (contentType: string, body: string) =>
      http()
        .post(`/api/conversations/${id}/messages`)
        .set({ ...bearer, 'Content-Type': contentType })
        .send(body);
    expectProblem(await post('application/json', '{"a":'), 400, 'malformed_json');
    expectProblem(await post('text/plain', 'hello'), 415, 'unsupported_media_type');
  });
});

describe('query parameters: given once, numbers in plain decimal', () => {
  const app = useTestApp();
  const http = () => request(app().getHttpServer());
  let id: string;

  beforeAll(async () => {
    id = ((await http().post('/api/conversations')).body as { id: string }).id;
    for (let i = 0; i < 3; i++) {
      await http()
        .post(`/api/conversations/${id}/messages`)
        .send({ sender: 'agent', content: `m${i}` });
    }
  });

  const lastEventIdError = {
    field: 'lastEventId',
    message: 'Last-Event-ID must be a seq: an integer, 0 or more',
  };

  it.each([
    'lastEventId=1&lastEventId=2',
    'lastEventId=0x10',
    'lastEventId=1e2',
    'lastEventId=%201',
    'lastEventId=01',
    'lastEventId=-1',
    'lastEventId=%2B1',
    'lastEventId=1.0',
  ])('GET .../events?%s: 400 validation_failed', async (query) => {
    const res = await http().get(`/api/conversations/${id}/events?${query}`);
    expectProblem(res, 400, 'validation_failed');
    expect((res.body as { errors: unknown }).errors).toEqual([lastEventIdError]);
  });

  it.each(['1, 2', '0x10', '1e2', '01'])(
    'Last-Event-ID: %s: 400 validation_failed',
    async (id_) => {
      const res = await http().get(`/api/conversations/${id}/events`).set('Last-Event-ID', id_);
      expectProblem(res, 400, 'validation_failed');
      expect((res.body as { errors: unknown }).errors).toEqual([lastEventIdError]);
    },
  );

  it.each([
    ['limit=1&limit=2', 'limit', 'limit must be an integer'],
    ['after=1&after=2', 'after', 'after must be an integer seq'],
    ['before=2&before=3', 'before', 'before must be an integer seq'],
    ['limit=0x10', 'limit', 'limit must be an integer'],
    ['limit=1e2', 'limit', 'limit must be an integer'],
    ['limit=%201', 'limit', 'limit must be an integer'],
    ['limit=1%20', 'limit', 'limit must be an integer'],
    ['limit=010', 'limit', 'limit must be an integer'],
    ['limit=%2B5', 'limit', 'limit must be an integer'],
    ['limit=5.0', 'limit', 'limit must be an integer'],
    ['limit=', 'limit', 'limit must be an integer'],
    ['after=0b11', 'after', 'after must be an integer seq'],
    ['after=0o7', 'after', 'after must be an integer seq'],
    ['after=', 'after', 'after must be an integer seq'],
    ['after=99999999999999999999', 'after', 'after must be an integer seq'],
    ['after=-0', 'after', 'after must be an integer seq'],
    ['after=-01', 'after', 'after must be an integer seq'],
    ['after=-1', 'after', 'after must not be negative'],
    ['before=Infinity', 'before', 'before must be an integer seq'],
  ])('GET .../messages?%s: 400 validation_failed', async (query, field, message) => {
    const res = await http().get(`/api/conversations/${id}/messages?${query}`);
    expectProblem(res, 400, 'validation_failed');
    expect((res.body as { errors: unknown }).errors).toEqual([{ field, message }]);
  });

  it('takes plain decimal numbers', async () => {
    const res = await http().get(`/api/conversations/${id}/messages?limit=2&after=0`);
    expect(res.status).toBe(200);
    expect((res.body as { messages: { seq: number }[] }).messages.map((m) => m.seq)).toEqual([
      1, 2,
    ]);
    const back = await http().get(`/api/conversations/${id}/messages?before=3&limit=10`);
    expect((back.body as { messages: { seq: number }[] }).messages.map((m) => m.seq)).toEqual([
      1, 2,
    ]);
  });
});

describe('query parameters: access_token given twice (API_KEYS set)', () => {
  const app = useTestApp({ env: { API_KEYS: API_KEY } });

  it('400 validation_failed, not a 500 and not a stream', async () => {
    const res = await request(app().getHttpServer()).get(
      `/api/conversations/${randomUUID()}/events?access_token=${API_KEY}&access_token=${API_KEY}`,
    );
    expectProblem(res, 400, 'validation_failed');
    expect((res.body as { errors: unknown }).errors).toEqual([
      { field: 'access_token', message: 'access_token must be given once' },
    ]);
  });
});

/** A store whose event-stream read fails with a plain Error: the filter's 500 and its log line. */
class FailingChangesRepository extends InMemoryConversationRepository {
  override changesAfter(): Promise<never> {
    return Promise.reject(new Error('the store broke'));
  }
}

/** Every line the app logs, as text. */
class CapturingLogger implements LoggerService {
  readonly lines: string[] = [];
  private capture = (...args: unknown[]) => {
    this.lines.push(JSON.stringify(args));
  };
  log = this.capture;
  error = this.capture;
  warn = this.capture;
  debug = this.capture;
  verbose = this.capture;
  fatal = this.capture;
}

describe('no credential in any log line (a forced 500, LOG_LEVEL=log)', () => {
  const app = useTestApp({
    env: { API_KEYS: API_KEY, LOG_LEVEL: 'log' },
    override: (builder) =>
      builder.overrideProvider(ConversationRepository).useValue(new FailingChangesRepository()),
  });
  const logger = new CapturingLogger();

  beforeAll(() => {
    app().useLogger(logger);
  });

  /** The lines logged for one request, once its access log line is written. */
  async function linesOf(requestId: string): Promise<string[]> {
    for (let i = 0; i < 50; i++) {
      const lines = logger.lines.filter((line) => line.includes(requestId));
      if (lines.some((line) => line.includes('"Http"'))) {
        return lines;
      }
      await sleep(10);
    }
    throw new Error(`no access log line for ${requestId}: ${logger.lines.join('\n')}`);
  }

  it.each([
    [
      'access_token',
      `?lastEventId=1&access_token=${API_KEY}`,
      '?lastEventId=1&access_token=[redacted]',
    ],
    ['an encoded name', `?access%5Ftoken=${API_KEY}`, '?access%5Ftoken=[redacted]'],
  ])('redacts %s in the error line; the access log has no query', async (_, query, logged) => {
    const id = randomUUID();
    const res = await request(app().getHttpServer()).get(`/api/conversations/${id}/events${query}`);
    expectProblem(res, 500, 'internal_error');
    const lines = await linesOf(res.headers['x-request-id']);
    const all = lines.join('\n');
    expect(all).toContain(`Unhandled error on GET /api/conversations/${id}/events${logged}`);
    expect(all).toContain('the store broke');
    expect(all).not.toContain(API_KEY);
  });

  it('never logs the Authorization header', async () => {
    const res = await request(app().getHttpServer())
      .get(`/api/conversations/${randomUUID()}/events`)
      .set(bearer);
    expectProblem(res, 500, 'internal_error');
    const all = (await linesOf(res.headers['x-request-id'])).join('\n');
    expect(all).toContain('Unhandled error on GET');
    expect(all).not.toContain(API_KEY);
  });
});
