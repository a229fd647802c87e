import { LoggerService } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { ConversationRepository } from '../src/conversations/conversation.repository';
import { InMemoryConversationRepository } from '../src/conversations/repositories/memory/in-memory-conversation.repository';
import { asIs, MESSAGE } from './utils/bodies';
import { useTestApp, useTestAppWithConversation } from './utils/create-app';
import { expectProblemDetail } from './utils/problem';

// What every route's input goes through, in order: the rate limit, access, then the body; and
// what the logs keep of it. One route's own charsets and query parameters: its file in routes/.

const API_KEY = 'backend-key-0123456789abcdef';
const bearer = { Authorization: `Bearer ${API_KEY}` };

describe('JSON bodies: depth checked on what is parsed', () => {
  let id: string;
  const { http } = useTestAppWithConversation(0, (opened) => (id = opened));

  const messageCount = async () =>
    ((await http().get(`/api/conversations/${id}`)).body as { messageCount: number }).messageCount;

  const post = (
    contentType: string,
    body: string | Buffer,
    path = `/api/conversations/${id}/messages`,
  ) => http().post(path).set('Content-Type', contentType).serialize(asIs).send(body);

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
      expectProblemDetail(await post(contentType, body, '/api/nope'), 404, 'not_found');
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
      expectProblemDetail(await malformed(), 400, 'malformed_json');
    }
    expectProblemDetail(await malformed(), 429, 'rate_limited');
    const notJson = await http()
      .post('/api/conversations')
      .set('Content-Type', 'text/plain')
      .send('hello');
    expectProblemDetail(notJson, 429, 'rate_limited');
    const utf16 = await http()
      .post('/api/conversations')
      .set('Content-Type', 'application/json; charset=utf-16le')
      .serialize(asIs)
      .send(Buffer.from('{}', 'utf16le'));
    expectProblemDetail(utf16, 429, 'rate_limited');
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
      expectProblemDetail(res, 401, 'unauthorized');
    }
    expect(await messageCount()).toBe(0);
  });

  it('401 with a wrong credential for a malformed body', async () => {
    const res = await http()
      .post(`/api/conversations/${id}/messages`)
      .set({ Authorization: 'Bearer not-a-key', 'Content-Type': 'application/json' })
      .send('{"a":');
    expectProblemDetail(res, 401, 'unauthorized');
  });

  it('a customer token: 403 posting as agent, 400 for a malformed body, 415 for another type; nothing stored', async () => {
    const asCustomer = { Authorization: `Bearer ${customerToken}` };
    const post = (contentType: string, body: string) =>
      http()
        .post(`/api/conversations/${id}/messages`)
        .set({ ...asCustomer, 'Content-Type': contentType })
        .send(body);
    expectProblemDetail(await post('application/json', MESSAGE), 403, 'sender_not_allowed');
    expectProblemDetail(await post('application/json', '{"sender":'), 400, 'malformed_json');
    expectProblemDetail(await post('text/plain', MESSAGE), 415, 'unsupported_media_type');
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
    expectProblemDetail(await post('application/json', '{"a":'), 400, 'malformed_json');
    expectProblemDetail(await post('text/plain', 'hello'), 415, 'unsupported_media_type');
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
    expectProblemDetail(res, 500, 'internal_error');
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
    expectProblemDetail(res, 500, 'internal_error');
    const all = (await linesOf(res.headers['x-request-id'])).join('\n');
    expect(all).toContain('Unhandled error on GET');
    expect(all).not.toContain(API_KEY);
  });
});
