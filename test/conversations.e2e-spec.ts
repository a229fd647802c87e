import { NestExpressApplication } from '@nestjs/platform-express';
import fc from 'fast-check';
import request from 'supertest';
import { Clock } from '../src/common/clock';
import { useTestApp } from './utils/create-app';
import { FakeClock } from './utils/fake-clock';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const T0 = 1_764_201_600_000;
/** A valid UUID v4 that no conversation or message will ever have. */
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

interface FieldError {
  field: string;
  message: string;
}

interface Message {
  id: string;
  conversationId: string;
  sender: string;
  content: string;
  timestamp: number;
  seq: number;
  createdAt: number;
}

interface Conversation {
  id: string;
  conversationId: string;
  createdAt: number;
  lastActivityAt: number;
  messageCount: number;
}

interface History extends Conversation {
  messages: Message[];
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  503: 'Service Unavailable',
};

const DETAILS: Record<string, string> = {
  validation_failed: 'The request is not valid: see errors for each field.',
  malformed_json: 'The body is not valid JSON.',
  payload_too_large: 'The body is larger than the server accepts (BODY_LIMIT).',
  unsupported_media_type: 'The body must be JSON, sent with Content-Type: application/json.',
  conversation_not_found: 'No such conversation.',
  message_not_found: 'No such message in this conversation.',
  conversation_full: 'The conversation holds the maximum number of messages.',
  capacity_exceeded: 'The server holds the maximum number of conversations. Retry later.',
  not_found: 'No such route.',
};

/** Asserts the exact problem+json response for a code, with field errors for validation_failed. */
function expectProblem(
  res: request.Response,
  status: number,
  code: string,
  errors?: FieldError[],
  detail = DETAILS[code],
): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json(;|$)/);
  expect(res.headers['x-request-id']).toMatch(UUID_V4);
  expect(res.body).toEqual({
    type: `urn:chat-server:problem:${code.replace(/_/g, '-')}`,
    title: TITLES[status],
    status,
    detail,
    code,
    ...(errors ? { errors } : {}),
    requestId: res.headers['x-request-id'],
  });
}

/** Helpers bound to one app. */
function client(getApp: () => NestExpressApplication) {
  const http = () => request(getApp().getHttpServer());

  async function createConversation(): Promise<Conversation> {
    const res = await http().post('/api/conversations');
    expect(res.status).toBe(201);
    return res.body as Conversation;
  }

  async function post(conversationId: string, body: object): Promise<Message> {
    const res = await http().post(`/api/conversations/${conversationId}/messages`).send(body);
    expect(res.status).toBe(201);
    return res.body as Message;
  }

  async function history(conversationId: string): Promise<History> {
    const res = await http().get(`/api/conversations/${conversationId}`);
    expect(res.status).toBe(200);
    return res.body as History;
  }

  /** Runs a request that must fail and checks the conversation is exactly as before it. */
  async function expectUnchanged(
    conversationId: string,
    clock: FakeClock,
    action: () => Promise<void>,
  ): Promise<void> {
    const before = await history(conversationId);
    clock.advance(1_000); // any touch would now move lastActivityAt
    await action();
    expect(await history(conversationId)).toEqual(before);
  }

  return { http, createConversation, post, history, expectUnchanged };
}

/** The real app with a fake clock, started before and closed after the enclosing describe. */
function useApp(env: Record<string, string> = {}) {
  const clock = new FakeClock(T0);
  const app = useTestApp({ env, override: (b) => b.overrideProvider(Clock).useValue(clock) });
  return { clock, ...client(app) };
}

describe('Conversations API (default limits)', () => {
  const { clock, http, createConversation, post, history, expectUnchanged } = useApp();

  describe('POST /api/conversations', () => {
    it('creates a conversation: 201, exact body, Location header', async () => {
      const res = await http().post('/api/conversations');

      expect(res.status).toBe(201);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const body = res.body as Conversation;
      expect(body).toEqual({
        conversationId: body.id,
        id: expect.stringMatching(UUID_V4),
        createdAt: clock.time,
        lastActivityAt: clock.time,
        messageCount: 0,
        customerToken: expect.stringMatching(/^[0-9a-f-]{36}\.[A-Za-z0-9_-]{43}$/),
      });
      expect((body as Conversation & { customerToken: string }).customerToken).toMatch(
        new RegExp(`^${body.id}\\.`),
      );
      expect(res.headers.location).toBe(`/api/conversations/${body.id}`);
    });

    it('accepts an empty JSON object as the body', async () => {
      const res = await http().post('/api/conversations').send({});

      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        conversationId: expect.stringMatching(UUID_V4),
        id: expect.stringMatching(UUID_V4),
        createdAt: clock.time,
        lastActivityAt: clock.time,
        messageCount: 0,
        customerToken: expect.any(String),
      });
    });

    it('gives every conversation a new id', async () => {
      const a = await createConversation();
      const b = await createConversation();

      expect(a.id).not.toBe(b.id);
    });

    it('refuses unknown body fields with 400 validation_failed', async () => {
      const res = await http().post('/api/conversations').send({ title: 'x' });

      expectProblem(res, 400, 'validation_failed', [
        { field: 'title', message: 'property title should not exist' },
      ]);
    });

    it('refuses a __proto__ key in the body', async () => {
      const res = await http()
        .post('/api/conversations')
        .set('Content-Type', 'application/json')
        .send('{"__proto__":{"admin":true}}');

      expectProblem(res, 400, 'validation_failed', [
        { field: '__proto__', message: 'property __proto__ should not exist' },
      ]);
    });

    it('refuses an array body with 400 validation_failed', async () => {
      const res = await http().post('/api/conversations').send([]);

      expectProblem(res, 400, 'validation_failed', [
        { field: '(body)', message: 'the body must be empty or a JSON object' },
      ]);
    });

    it('refuses malformed JSON with 400 malformed_json', async () => {
      const res = await http()
        .post('/api/conversations')
        .set('Content-Type', 'application/json')
        .send('{"a":');

      expectProblem(res, 400, 'malformed_json');
    });

    it('refuses a text/plain body with 415 unsupported_media_type', async () => {
      const res = await http()
        .post('/api/conversations')
        .set('Content-Type', 'text/plain')
        .send('hello');

      expectProblem(res, 415, 'unsupported_media_type');
    });
  });

  describe('GET /api/conversations/:id', () => {
    it('returns a new conversation with no messages', async () => {
      const conversation = await createConversation();

      const res = await http().get(`/api/conversations/${conversation.id}`);

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({
        id: conversation.id,
        conversationId: conversation.id,
        createdAt: conversation.createdAt,
        lastActivityAt: conversation.createdAt,
        messageCount: 0,
        lastRead: { customer: 0, agent: 0 },
        messages: [],
      });
    });

    it('does not move lastActivityAt (reads are not activity)', async () => {
      const conversation = await createConversation();
      clock.advance(5_000);
      await post(conversation.id, { sender: 'customer', content: 'hi' });
      const lastActivityAt = clock.time;

      clock.advance(60_000);
      await history(conversation.id);
      clock.advance(60_000);
      const after = await history(conversation.id);

      expect(after.lastActivityAt).toBe(lastActivityAt);
      expect(after.createdAt).toBe(conversation.createdAt);
    });

    it('404 conversation_not_found for an unknown UUID', async () => {
      const res = await http().get(`/api/conversations/${UNKNOWN_ID}`);

      expectProblem(res, 404, 'conversation_not_found');
    });

    it.each([
      'not-a-uuid',
      '123',
      '00000000-0000-4000-8000-00000000000',
      '00000000-0000-4000-8000-0000000000000',
      "1' OR '1'='1",
    ])('404 conversation_not_found for the non-UUID id %j', async (id) => {
      const res = await http().get(`/api/conversations/${encodeURIComponent(id)}`);

      expectProblem(res, 404, 'conversation_not_found');
    });

    it('accepts the id in upper case', async () => {
      const conversation = await createConversation();
      await post(conversation.id, { sender: 'agent', content: 'hello' });

      const res = await http().get(`/api/conversations/${conversation.id.toUpperCase()}`);

      expect(res.status).toBe(200);
      expect(res.body).toEqual(await history(conversation.id));
      expect((res.body as History).id).toBe(conversation.id);
    });
  });

  describe('POST /api/conversations/:id/messages', () => {
    it('creates a message: 201 with the exact body, timestamp defaulting to the server clock', async () => {
      const conversation = await createConversation();
      clock.advance(1_234);

      const res = await http()
        .post(`/api/conversations/${conversation.id}/messages`)
        .send({ sender: 'customer', content: 'Where is my order?' });

      expect(res.status).toBe(201);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({
        id: expect.stringMatching(UUID_V4),
        conversationId: conversation.id,
        sender: 'customer',
        content: 'Where is my order?',
        timestamp: clock.time,
        seq: 1,
        createdAt: clock.time,
      });
    });

    it('keeps a client timestamp and records the server arrival time as createdAt', async () => {
      const conversation = await createConversation();
      clock.advance(10_000);
      const timestamp = clock.time - 7_000;

      const message = await post(conversation.id, { sender: 'agent', content: 'hi', timestamp });

      expect(message).toEqual({
        id: expect.stringMatching(UUID_V4),
        conversationId: conversation.id,
        sender: 'agent',
        content: 'hi',
        timestamp,
        seq: 1,
        createdAt: clock.time,
      });
    });

    it('accepts timestamp 0 and a timestamp exactly MAX_CLOCK_SKEW_MS ahead', async () => {
      const conversation = await createConversation();

      const early = await post(conversation.id, { sender: 'agent', content: 'a', timestamp: 0 });
      const ahead = await post(conversation.id, {
        sender: 'agent',
        content: 'b',
        timestamp: clock.time + 300_000,
      });

      expect(early.timestamp).toBe(0);
      expect(ahead.timestamp).toBe(clock.time + 300_000);
    });

    it('moves lastActivityAt and messageCount; the history holds the message', async () => {
      const conversation = await createConversation();
      clock.advance(2_000);

      const message = await post(conversation.id, { sender: 'customer', content: 'hello' });

      expect(await history(conversation.id)).toEqual({
        id: conversation.id,
        conversationId: conversation.id,
        createdAt: conversation.createdAt,
        lastActivityAt: clock.time,
        messageCount: 1,
        lastRead: { customer: 0, agent: 0 },
        messages: [message],
      });
    });

    it('numbers messages with seq 1..N', async () => {
      const conversation = await createConversation();

      const seqs: number[] = [];
      for (let i = 0; i < 5; i++) {
        const message = await post(conversation.id, { sender: 'customer', content: `m${i}` });
        expect(Number.isInteger(message.seq)).toBe(true);
        seqs.push(message.seq);
      }

      expect(seqs).toEqual([1, 2, 3, 4, 5]);
      expect((await history(conversation.id)).messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    });

    it('continues seq after a delete (post, post, delete -> next post gets seq 4)', async () => {
      const conversation = await createConversation();
      const first = await post(conversation.id, { sender: 'customer', content: 'one' });
      const second = await post(conversation.id, { sender: 'agent', content: 'two' });
      const deleted = await http().delete(
        `/api/conversations/${conversation.id}/messages/${second.id}`,
      );
      expect(deleted.status).toBe(200);

      const third = await post(conversation.id, { sender: 'customer', content: 'three' });

      expect([first.seq, second.seq, third.seq]).toEqual([1, 2, 4]);
      expect((await history(conversation.id)).messages.map((m) => [m.content, m.seq])).toEqual([
        ['one', 1],
        ['three', 4],
      ]);
    });

    it('keeps seq per conversation', async () => {
      const a = await createConversation();
      const b = await createConversation();

      await post(a.id, { sender: 'customer', content: 'a1' });
      await post(a.id, { sender: 'customer', content: 'a2' });
      const b1 = await post(b.id, { sender: 'customer', content: 'b1' });

      expect(b1.seq).toBe(1);
    });

    it('orders the history by timestamp, ties by seq, whatever the posting order', async () => {
      const conversation = await createConversation();
      const base = clock.time - 100_000;
      const posts: [string, number][] = [
        ['c', base + 30],
        ['a', base + 10],
        ['d', base + 30],
        ['b', base + 20],
        ['e', base + 30],
        ['z', base + 0],
        ['f', base + 40],
        ['b2', base + 20],
      ];
      for (const [content, timestamp] of posts) {
        await post(conversation.id, { sender: 'customer', content, timestamp });
      }

      const { messages } = await history(conversation.id);

      expect(messages.map((m) => [m.content, m.timestamp, m.seq])).toEqual([
        ['z', base + 0, 6],
        ['a', base + 10, 2],
        ['b', base + 20, 4],
        ['b2', base + 20, 8],
        ['c', base + 30, 1],
        ['d', base + 30, 3],
        ['e', base + 30, 5],
        ['f', base + 40, 7],
      ]);
    });

    it('places messages without a timestamp by server time among client-stamped ones', async () => {
      const conversation = await createConversation();
      await post(conversation.id, {
        sender: 'customer',
        content: 'future',
        timestamp: clock.time + 50,
      });
      await post(conversation.id, { sender: 'customer', content: 'now' });
      await post(conversation.id, {
        sender: 'customer',
        content: 'past',
        timestamp: clock.time - 50,
      });

      const { messages } = await history(conversation.id);

      expect(messages.map((m) => m.content)).toEqual(['past', 'now', 'future']);
    });

    it.each([
      ['emoji', 'Hi 👋🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️'],
      ['CJK', '你好，我的订单还没到。こんにちは 안녕하세요'],
      ['RTL', 'مرحبا، طلبي لم يصل بعد ‏שלום‎'],
      ['combining marks', 'e\u0301 a\u0308 Z\u0351\u0362\u0353 \u0915\u094d\u0937'],
      ['newlines and tabs', 'line 1\nline 2\r\n\tindented\n\n'],
      ['surrounding whitespace', '   padded   '],
      ['JSON and HTML characters', '{"a":1} <b>&amp;</b> \\ \' " \u0000 \u2028\u2029'],
      ['zero-width and BOM characters', 'a\u200bb\u200dc\ufeffd'],
    ])('round-trips %s content exactly', async (_name, content) => {
      const conversation = await createConversation();

      const created = await post(conversation.id, { sender: 'agent', content });

      expect(created.content).toBe(content);
      expect((await history(conversation.id)).messages[0].content).toBe(content);
    });

    it('accepts content of exactly MAX_MESSAGE_LENGTH (10000) characters', async () => {
      const conversation = await createConversation();
      const content = 'x'.repeat(10_000);

      const created = await post(conversation.id, { sender: 'agent', content });

      expect(created.content).toBe(content);
    });

    it('accepts an application/*+json content type', async () => {
      const conversation = await createConversation();

      const res = await http()
        .post(`/api/conversations/${conversation.id}/messages`)
        .set('Content-Type', 'application/vnd.api+json')
        .send(JSON.stringify({ sender: 'customer', content: 'typed' }));

      expect(res.status).toBe(201);
      expect((res.body as Message).content).toBe('typed');
    });

    it('404 conversation_not_found for an unknown conversation', async () => {
      const res = await http()
        .post(`/api/conversations/${UNKNOWN_ID}/messages`)
        .send({ sender: 'customer', content: 'hi' });

      expectProblem(res, 404, 'conversation_not_found');
    });

    it('404 conversation_not_found for a non-UUID conversation id', async () => {
      const res = await http()
        .post('/api/conversations/not-a-uuid/messages')
        .send({ sender: 'customer', content: 'hi' });

      expectProblem(res, 404, 'conversation_not_found');
    });

    it('accepts the conversation id in upper case', async () => {
      const conversation = await createConversation();

      const res = await http()
        .post(`/api/conversations/${conversation.id.toUpperCase()}/messages`)
        .send({ sender: 'customer', content: 'upper' });

      expect(res.status).toBe(201);
      expect((res.body as Message).conversationId).toBe(conversation.id);
      expect((await history(conversation.id)).messages.map((m) => m.content)).toEqual(['upper']);
    });
  });

  describe('POST /api/conversations/:id/messages with bad input', () => {
    let conversationId: string;

    beforeAll(async () => {
      conversationId = (await createConversation()).id;
      await post(conversationId, { sender: 'customer', content: 'first' });
      await post(conversationId, { sender: 'agent', content: 'second', timestamp: T0 - 1 });
    });

    const SENDER_ERROR = { field: 'sender', message: 'sender must be one of: customer, agent' };
    const CONTENT_TYPE_ERROR = { field: 'content', message: 'content must be a string' };
    const BLANK_ERROR = {
      field: 'content',
      message: 'content must not be empty or only whitespace',
    };
    const TIMESTAMP_INT_ERROR = {
      field: 'timestamp',
      message: 'timestamp must be an integer number of milliseconds since the epoch',
    };
    const UNICODE_ERROR = { field: 'content', message: 'content must be valid Unicode text' };
    const unknownField = (field: string) => ({
      field,
      message: `property ${field} should not exist`,
    });

    it.each<[string, unknown, FieldError[]]>([
      ['sender missing', { content: 'hi' }, [SENDER_ERROR]],
      ['sender not customer/agent', { sender: 'bot', content: 'hi' }, [SENDER_ERROR]],
      ['sender in another case', { sender: 'Customer', content: 'hi' }, [SENDER_ERROR]],
      ['sender a number', { sender: 1, content: 'hi' }, [SENDER_ERROR]],
      ['sender null', { sender: null, content: 'hi' }, [SENDER_ERROR]],
      ['content missing', { sender: 'customer' }, [CONTENT_TYPE_ERROR]],
      ['content a number', { sender: 'customer', content: 42 }, [CONTENT_TYPE_ERROR]],
      ['content null', { sender: 'customer', content: null }, [CONTENT_TYPE_ERROR]],
      ['content an array', { sender: 'customer', content: ['hi'] }, [CONTENT_TYPE_ERROR]],
      ['content an object', { sender: 'customer', content: { text: 'hi' } }, [CONTENT_TYPE_ERROR]],
      ['content empty', { sender: 'customer', content: '' }, [BLANK_ERROR]],
      ['content only whitespace', { sender: 'customer', content: ' \n\t\r ' }, [BLANK_ERROR]],
      [
        'content only Unicode spaces',
        { sender: 'customer', content: '\u00a0\u3000\u2003' },
        [BLANK_ERROR],
      ],
      [
        'content longer than MAX_MESSAGE_LENGTH',
        { sender: 'customer', content: 'x'.repeat(10_001) },
        [{ field: 'content', message: 'content must be at most 10000 characters' }],
      ],
      ['content a lone high surrogate', { sender: 'customer', content: '\ud83d' }, [UNICODE_ERROR]],
      [
        'content with a lone low surrogate',
        { sender: 'customer', content: 'a\ude00b' },
        [UNICODE_ERROR],
      ],
      [
        'content with surrogates in the wrong order',
        { sender: 'customer', content: '\ude00\ud83d' },
        [UNICODE_ERROR],
      ],
      [
        'timestamp not an integer',
        { sender: 'customer', content: 'hi', timestamp: 1.5 },
        [TIMESTAMP_INT_ERROR],
      ],
      [
        'timestamp a numeric string',
        { sender: 'customer', content: 'hi', timestamp: String(T0) },
        [TIMESTAMP_INT_ERROR],
      ],
      [
        'timestamp a boolean',
        { sender: 'customer', content: 'hi', timestamp: true },
        [TIMESTAMP_INT_ERROR],
      ],
      [
        'timestamp null',
        { sender: 'customer', content: 'hi', timestamp: null },
        [TIMESTAMP_INT_ERROR],
      ],
      [
        'timestamp negative',
        { sender: 'customer', content: 'hi', timestamp: -1 },
        [{ field: 'timestamp', message: 'timestamp must not be negative' }],
      ],
      [
        'timestamp beyond the safe integers',
        { sender: 'customer', content: 'hi', timestamp: 1e300 },
        [{ field: 'timestamp', message: 'timestamp is too large' }],
      ],
      [
        'timestamp more than MAX_CLOCK_SKEW_MS ahead',
        { sender: 'customer', content: 'hi', timestamp: 'AHEAD' },
        [
          {
            field: 'timestamp',
            message: "timestamp must not be more than 300000 ms ahead of the server's clock",
          },
        ],
      ],
      [
        'an unknown field',
        { sender: 'customer', content: 'hi', extra: 1 },
        [unknownField('extra')],
      ],
      [
        'a conversationId field',
        { sender: 'customer', content: 'hi', conversationId: UNKNOWN_ID },
        [unknownField('conversationId')],
      ],
      ['a seq field', { sender: 'customer', content: 'hi', seq: 99 }, [unknownField('seq')]],
      ['an empty object', {}, [SENDER_ERROR, CONTENT_TYPE_ERROR]],
      [
        'every field wrong',
        { sender: 'x', content: '', timestamp: -5 },
        [
          SENDER_ERROR,
          BLANK_ERROR,
          { field: 'timestamp', message: 'timestamp must not be negative' },
        ],
      ],
      ['an array body', [], [{ field: '(body)', message: 'the body must be a JSON object' }]],
      [
        'an array of messages',
        [{ sender: 'customer', content: 'hi' }],
        [{ field: '(body)', message: 'the body must be a JSON object' }],
      ],
    ])('400 validation_failed for %s; nothing changes', async (_name, body, errors) => {
      // The skew case is relative to the clock at the time of the request.
      const payload =
        body && typeof body === 'object' && 'timestamp' in body && body.timestamp === 'AHEAD'
          ? { ...body, timestamp: clock.time + 1_000 + 300_001 }
          : body;

      await expectUnchanged(conversationId, clock, async () => {
        const res = await http()
          .post(`/api/conversations/${conversationId}/messages`)
          .set('Content-Type', 'application/json')
          .send(JSON.stringify(payload));
        expectProblem(res, 400, 'validation_failed', errors);
      });
    });

    it.each([
      ['__proto__', '{"sender":"customer","content":"hi","__proto__":{"sender":"agent"}}'],
      ['constructor', '{"sender":"customer","content":"hi","constructor":{"name":"x"}}'],
      ['prototype', '{"sender":"customer","content":"hi","prototype":{}}'],
    ])('400 validation_failed for a %s key; nothing changes', async (key, raw) => {
      await expectUnchanged(conversationId, clock, async () => {
        const res = await http()
          .post(`/api/conversations/${conversationId}/messages`)
          .set('Content-Type', 'application/json')
          .send(raw);
        expectProblem(res, 400, 'validation_failed', [unknownField(key)]);
      });
    });

    // Valid JSON that is not an object is a validation failure, not malformed JSON.
    it('400 validation_failed for non-object JSON bodies (42, "hello", null, true); nothing changes', async () => {
      for (const raw of ['42', '"hello"', 'null', 'true']) {
        await expectUnchanged(conversationId, clock, async () => {
          const res = await http()
            .post(`/api/conversations/${conversationId}/messages`)
            .set('Content-Type', 'application/json')
            .send(raw);
          expectProblem(res, 400, 'validation_failed', [
            { field: '(body)', message: 'the body must be a JSON object' },
          ]);
        });
      }
    });

    it.each([
      '{"sender":"customer","content":"hi"',
      "{'sender':'customer','content':'hi'}",
      '{"sender":"customer","content":"hi",}',
      '{"sender":"customer" "content":"hi"}',
      'sender=customer&content=hi',
    ])('400 malformed_json for %j; nothing changes; no parser details leak', async (raw) => {
      await expectUnchanged(conversationId, clock, async () => {
        const res = await http()
          .post(`/api/conversations/${conversationId}/messages`)
          .set('Content-Type', 'application/json')
          .send(raw);
        expectProblem(res, 400, 'malformed_json');
        expect(res.text).not.toMatch(/SyntaxError|Unexpected|at .*\.js|body-parser|express/i);
      });
    });

    it.each([
      ['text/plain', 'hello'],
      ['application/x-www-form-urlencoded', 'sender=customer&content=hi'],
      ['application/xml', '<message><sender>customer</sender></message>'],
    ])('415 unsupported_media_type for a %s body; nothing changes', async (type, raw) => {
      await expectUnchanged(conversationId, clock, async () => {
        const res = await http()
          .post(`/api/conversations/${conversationId}/messages`)
          .set('Content-Type', type)
          .send(raw);
        expectProblem(res, 415, 'unsupported_media_type');
      });
    });

    it('415 unsupported_media_type for JSON in a charset other than UTF-8; nothing changes', async () => {
      await expectUnchanged(conversationId, clock, async () => {
        const res = await http()
          .post(`/api/conversations/${conversationId}/messages`)
          .set('Content-Type', 'application/json; charset=iso-8859-1')
          .send(JSON.stringify({ sender: 'customer', content: 'hi' }));
        expectProblem(
          res,
          415,
          'unsupported_media_type',
          undefined,
          'The body must be JSON encoded as UTF-8.',
        );
      });
    });
  });

  describe('DELETE /api/conversations/:id/messages/:messageId', () => {
    it('deletes a message: 200 {success, messageId}; gone from the history; activity moves', async () => {
      const conversation = await createConversation();
      const keep = await post(conversation.id, { sender: 'customer', content: 'keep' });
      const drop = await post(conversation.id, { sender: 'agent', content: 'drop' });
      clock.advance(3_000);

      const res = await http().delete(`/api/conversations/${conversation.id}/messages/${drop.id}`);

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({ success: true, messageId: drop.id });
      expect(await history(conversation.id)).toEqual({
        id: conversation.id,
        conversationId: conversation.id,
        createdAt: conversation.createdAt,
        lastActivityAt: clock.time,
        messageCount: 1,
        lastRead: { customer: 0, agent: 0 },
        messages: [keep],
      });
    });

    it('404 message_not_found when deleting again; nothing changes', async () => {
      const conversation = await createConversation();
      const message = await post(conversation.id, { sender: 'customer', content: 'once' });
      await post(conversation.id, { sender: 'customer', content: 'stays' });
      const first = await http().delete(
        `/api/conversations/${conversation.id}/messages/${message.id}`,
      );
      expect(first.status).toBe(200);

      await expectUnchanged(conversation.id, clock, async () => {
        const res = await http().delete(
          `/api/conversations/${conversation.id}/messages/${message.id}`,
        );
        expectProblem(res, 404, 'message_not_found');
      });
    });

    it('404 message_not_found for a message of another conversation; neither changes', async () => {
      const a = await createConversation();
      const b = await createConversation();
      const message = await post(b.id, { sender: 'customer', content: 'in b' });
      const bBefore = await history(b.id);

      await expectUnchanged(a.id, clock, async () => {
        const res = await http().delete(`/api/conversations/${a.id}/messages/${message.id}`);
        expectProblem(res, 404, 'message_not_found');
      });
      expect(await history(b.id)).toEqual(bBefore);
    });

    it('404 message_not_found for an unknown or non-UUID message id; nothing changes', async () => {
      const conversation = await createConversation();
      await post(conversation.id, { sender: 'customer', content: 'x' });

      for (const messageId of [UNKNOWN_ID, 'not-a-uuid', '42']) {
        await expectUnchanged(conversation.id, clock, async () => {
          const res = await http().delete(
            `/api/conversations/${conversation.id}/messages/${messageId}`,
          );
          expectProblem(res, 404, 'message_not_found');
        });
      }
    });

    it('404 conversation_not_found for an unknown or non-UUID conversation id', async () => {
      for (const conversationId of [UNKNOWN_ID, 'not-a-uuid']) {
        const res = await http().delete(
          `/api/conversations/${conversationId}/messages/${UNKNOWN_ID}`,
        );
        expectProblem(res, 404, 'conversation_not_found');
      }
    });

    it('accepts both ids in upper case', async () => {
      const conversation = await createConversation();
      const message = await post(conversation.id, { sender: 'customer', content: 'x' });

      const res = await http().delete(
        `/api/conversations/${conversation.id.toUpperCase()}/messages/${message.id.toUpperCase()}`,
      );

      expect(res.status).toBe(200);
      expect(res.body).toEqual({ success: true, messageId: message.id });
      expect((await history(conversation.id)).messages).toEqual([]);
    });
  });

  describe('unknown routes', () => {
    it.each([
      ['get', '/api/nope'],
      ['get', '/nope'],
      ['post', '/'],
      ['get', '/api/conversations'],
      ['put', `/api/conversations/${UNKNOWN_ID}`],
      ['patch', `/api/conversations/${UNKNOWN_ID}`],
      ['put', `/api/conversations/${UNKNOWN_ID}/messages`],
      ['delete', `/api/conversations/${UNKNOWN_ID}`],
    ] as const)('%s %s -> 404 not_found', async (method, path) => {
      const res = await http()[method](path);

      expectProblem(res, 404, 'not_found');
    });
  });

  describe('Swagger', () => {
    it('serves the UI at /docs', async () => {
      const res = await http().get('/docs');

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.text).toContain('swagger');
    });

    it('serves an OpenAPI document with every conversation route and problem+json errors', async () => {
      const res = await http().get('/docs-json');

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const doc = res.body as {
        openapi: string;
        paths: Record<
          string,
          Record<
            string,
            {
              responses: Record<string, { content?: Record<string, unknown> }>;
              parameters?: { name: string; in: string }[];
              security?: unknown[];
            }
          >
        >;
        components: { schemas: Record<string, unknown> };
      };
      expect(doc.openapi).toMatch(/^3\./);
      expect(doc.components.schemas.ProblemDto).toBeDefined();

      // Every conversation route may also answer 401 (access control) and 429 (rate limit).
      const expected: [string, string, string[], string[]][] = [
        ['/api/conversations', 'post', ['201'], ['400', '403', '422', '503', '507']],
        ['/api/conversations/{conversationId}', 'get', ['200'], ['404']],
        [
          '/api/conversations/{conversationId}/messages',
          'post',
          ['201'],
          ['400', '403', '404', '409', '413', '415', '422', '503', '507'],
        ],
        ['/api/conversations/{conversationId}/messages', 'get', ['200'], ['400', '404']],
        ['/api/conversations/{conversationId}/events', 'get', ['200'], ['400', '404', '503']],
        [
          '/api/conversations/{conversationId}/typing',
          'post',
          ['204'],
          ['400', '403', '404', '413', '415', '503'],
        ],
        [
          '/api/conversations/{conversationId}/read',
          'post',
          ['200'],
          ['400', '403', '404', '413', '415', '503', '507'],
        ],
        [
          '/api/conversations/{conversationId}/messages/{messageId}',
          'delete',
          ['200'],
          ['403', '404', '503'],
        ],
      ];
      for (const [path, method, success, listed] of expected) {
        const errors = [...listed, '401', '429'];
        const operation = doc.paths[path]?.[method];
        expect(operation).toBeDefined();
        expect(operation.security).toEqual([{ bearer: [] }]);
        expect(Object.keys(operation.responses).sort()).toEqual([...success, ...errors].sort());
        for (const status of errors) {
          expect(operation.responses[status].content).toEqual({
            'application/problem+json': { schema: { $ref: '#/components/schemas/ProblemDto' } },
          });
        }
      }
      for (const path of ['/api/conversations', '/api/conversations/{conversationId}/messages']) {
        const { parameters } = doc.paths[path].post;
        expect(parameters).toContainEqual(
          expect.objectContaining({ name: 'Idempotency-Key', in: 'header' }),
        );
      }
    });
  });
});

describe('Conversations API with MAX_MESSAGES_PER_CONVERSATION=3', () => {
  const { clock, http, createConversation, post, history, expectUnchanged } = useApp({
    MAX_MESSAGES_PER_CONVERSATION: '3',
  });

  it('409 conversation_full on the 4th message; nothing changes; a delete makes room', async () => {
    const conversation = await createConversation();
    const messages: Message[] = [];
    for (const content of ['1', '2', '3']) {
      messages.push(await post(conversation.id, { sender: 'customer', content }));
    }

    await expectUnchanged(conversation.id, clock, async () => {
      const res = await http()
        .post(`/api/conversations/${conversation.id}/messages`)
        .send({ sender: 'agent', content: '4' });
      expectProblem(res, 409, 'conversation_full');
    });

    const deleted = await http().delete(
      `/api/conversations/${conversation.id}/messages/${messages[0].id}`,
    );
    expect(deleted.status).toBe(200);
    const next = await post(conversation.id, { sender: 'agent', content: '4' });
    expect(next.seq).toBe(5);
    expect((await history(conversation.id)).messageCount).toBe(3);
  });

  it('counts per conversation: another conversation still takes messages', async () => {
    const full = await createConversation();
    for (const content of ['1', '2', '3']) {
      await post(full.id, { sender: 'customer', content });
    }
    const other = await createConversation();

    const message = await post(other.id, { sender: 'customer', content: 'fine' });

    expect(message.seq).toBe(1);
  });
});

describe('Conversations API with MAX_CONVERSATIONS=2', () => {
  const { http, createConversation, post, history } = useApp({ MAX_CONVERSATIONS: '2' });

  it('503 capacity_exceeded with Retry-After on the 3rd conversation; existing ones still work', async () => {
    const a = await createConversation();
    await createConversation();

    const res = await http().post('/api/conversations');

    expectProblem(res, 503, 'capacity_exceeded');
    expect(res.headers['retry-after']).toBe('60');
    expect(res.headers.location).toBeUndefined();
    const message = await post(a.id, { sender: 'customer', content: 'still here' });
    expect((await history(a.id)).messages).toEqual([message]);
  });
});

describe('Conversations API with MAX_MESSAGE_LENGTH=5', () => {
  const { clock, http, createConversation, post, expectUnchanged } = useApp({
    MAX_MESSAGE_LENGTH: '5',
  });

  it.each([
    ['5 emoji (10 UTF-16 code units)', '😀😃😄😁😆'],
    ['5 ASCII characters', 'abcde'],
    ['5 CJK characters', '你好世界啊'],
    ['4 characters and a combining mark', 'abce\u0301'],
  ])('accepts %s', async (_name, content) => {
    const conversation = await createConversation();

    const message = await post(conversation.id, { sender: 'customer', content });

    expect(message.content).toBe(content);
  });

  it.each([
    ['6 emoji', '😀😃😄😁😆😅'],
    ['6 ASCII characters', 'abcdef'],
    ['5 characters and a combining mark', 'abcde\u0301'],
  ])('refuses %s with 400 validation_failed; nothing changes', async (_name, content) => {
    const conversation = await createConversation();
    await post(conversation.id, { sender: 'customer', content: 'ok' });

    await expectUnchanged(conversation.id, clock, async () => {
      const res = await http()
        .post(`/api/conversations/${conversation.id}/messages`)
        .send({ sender: 'customer', content });
      expectProblem(res, 400, 'validation_failed', [
        { field: 'content', message: 'content must be at most 5 characters' },
      ]);
    });
  });
});

describe('Conversations API with MAX_MESSAGE_LENGTH=100: content round-trip property', () => {
  const LIMIT = 100;
  const { createConversation, post, history } = useApp({ MAX_MESSAGE_LENGTH: String(LIMIT) });

  it('stores any non-blank content of up to MAX_MESSAGE_LENGTH code points exactly', async () => {
    const content = fc
      .oneof(
        fc.string({ unit: 'binary', minLength: 1, maxLength: LIMIT }),
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: LIMIT }),
        fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: LIMIT }),
      )
      .filter((s) => /\S/.test(s) && [...s].length <= LIMIT);
    const sender = fc.constantFrom('customer', 'agent');

    await fc.assert(
      fc.asyncProperty(content, sender, async (text, who) => {
        const conversation = await createConversation();
        const created = await post(conversation.id, { sender: who, content: text });
        const { messages } = await history(conversation.id);
        expect(created.content).toBe(text);
        expect(messages).toEqual([created]);
      }),
      { numRuns: 50 },
    );
  });
});

describe('Conversations API with BODY_LIMIT=1kb', () => {
  const { clock, http, createConversation, post, expectUnchanged } = useApp({ BODY_LIMIT: '1kb' });

  it('accepts a body just under the limit', async () => {
    const conversation = await createConversation();
    const content = 'x'.repeat(1024 - JSON.stringify({ sender: 'agent', content: '' }).length);

    const message = await post(conversation.id, { sender: 'agent', content });

    expect(message.content).toBe(content);
  });

  it('413 payload_too_large for a larger message body; nothing changes', async () => {
    const conversation = await createConversation();
    await post(conversation.id, { sender: 'customer', content: 'small' });

    await expectUnchanged(conversation.id, clock, async () => {
      const res = await http()
        .post(`/api/conversations/${conversation.id}/messages`)
        .send({ sender: 'customer', content: 'x'.repeat(2_000) });
      expectProblem(res, 413, 'payload_too_large');
    });
  });

  it('413 payload_too_large when creating a conversation with a large body', async () => {
    const res = await http()
      .post('/api/conversations')
      .send({ padding: 'x'.repeat(2_000) });

    expectProblem(res, 413, 'payload_too_large');
  });
});
