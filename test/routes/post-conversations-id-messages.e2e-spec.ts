import fc from 'fast-check';
import request from 'supertest';
import { Message, T0, UNKNOWN_ID, useApp } from '../utils/api';
import { asIs, MESSAGE, utf32le, utf7 } from '../utils/bodies';
import { useTestApp, useTestAppWithConversation } from '../utils/create-app';
import { bearer, useAppWithKeys } from '../utils/credentials';
import { inboxClient, useListeningApp } from '../utils/inbox';
import {
  expectProblem,
  expectProblemCode,
  expectProblemDetail,
  FieldError,
  UUID_V4,
} from '../utils/problem';

describe('POST /api/conversations/{id}/messages', () => {
  describe('default limits', () => {
    const { clock, http, createConversation, post, history, expectUnchanged } = useApp();
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
        status: 'open',
        snoozedUntil: null,
        assignee: null,
        team: null,
        customer: {},
        unread: { customer: 0, agent: 1 },
        waitingSince: clock.time,
        metadata: {},
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

    describe('bad input', () => {
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
        [
          'content an object',
          { sender: 'customer', content: { text: 'hi' } },
          [CONTENT_TYPE_ERROR],
        ],
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
        [
          'content a lone high surrogate',
          { sender: 'customer', content: '\ud83d' },
          [UNICODE_ERROR],
        ],
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
  });

  describe('with MAX_MESSAGES_PER_CONVERSATION=3', () => {
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

  describe('with MAX_MESSAGE_LENGTH=5', () => {
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

  describe('with MAX_MESSAGE_LENGTH=100: content round-trip property', () => {
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

  describe('with BODY_LIMIT=1kb', () => {
    const { clock, http, createConversation, post, expectUnchanged } = useApp({
      BODY_LIMIT: '1kb',
    });

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
  });

  describe('access control (API_KEYS set)', () => {
    const { http, create, messageCount } = useAppWithKeys();

    it('403 sender_not_allowed when a customer posts as the agent; nothing is stored', async () => {
      const { id, customerToken } = await create();
      const res = await http()
        .post(`/api/conversations/${id}/messages`)
        .set(bearer(customerToken))
        .send({ sender: 'agent', content: 'I am the agent now' });
      expectProblemCode(res, 403, 'sender_not_allowed');
      expect(await messageCount(id)).toBe(0);
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
      id = (
        (await request(app().getHttpServer()).post('/api/conversations')).body as { id: string }
      ).id;
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

  describe('JSON bodies: UTF-8 only', () => {
    let id: string;
    const { http } = useTestAppWithConversation(0, (opened) => (id = opened));

    const messageCount = async () =>
      ((await http().get(`/api/conversations/${id}`)).body as { messageCount: number })
        .messageCount;

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
      expectProblemDetail(
        res,
        415,
        'unsupported_media_type',
        'The body must be JSON encoded as UTF-8.',
      );
      expect(await messageCount()).toBe(before);
    });

    it.each(['utf8', 'UTF-8', 'utf-8', 'Utf8', '"utf-8"'])(
      'accepts charset=%s',
      async (charset) => {
        const res = await post(`application/json; charset=${charset}`, MESSAGE);
        expect(res.status).toBe(201);
      },
    );

    it('accepts a content type with an empty parameter (RFC 9110), and none at all', async () => {
      expect((await post('application/json;', MESSAGE)).status).toBe(201);
      expect((await post('application/json', MESSAGE)).status).toBe(201);
    });

    it('415 for a content type whose parameters do not parse', async () => {
      const res = await post('application/json; charset', MESSAGE);
      expectProblemDetail(res, 415, 'unsupported_media_type');
    });
  });
  describe('a customer post reopens a snoozed or resolved conversation', () => {
    const { clock, http, stream } = useListeningApp();
    const inbox = inboxClient(http);

    it.each<[string, (id: string) => object]>([
      ['resolved', () => ({ status: 'resolved' })],
      ['snoozed', () => ({ status: 'snoozed', snoozedUntil: clock.time + 60_000 })],
    ])('%s: the message takes N and the reopen N+1, both on the stream', async (_status, patch) => {
      const { id } = await inbox.create();
      await inbox.post(id, 'agent', 'one'); // 1
      expect((await inbox.patch(id, patch(id))).status).toBe(200); // 2
      const events = await stream(`/api/conversations/${id}/events`);
      clock.advance(1_000);

      const message = await inbox.post(id, 'customer', 'back again');

      expect(message.seq).toBe(3);
      const [created, reopened] = await events.waitForEvents(2);
      expect([created.id, created.event, JSON.parse(created.data).content]).toEqual([
        '3',
        'message.created',
        'back again',
      ]);
      expect({ ...reopened, data: JSON.parse(reopened.data) as unknown }).toEqual({
        id: '4',
        event: 'conversation.updated',
        data: {
          seq: 4,
          changed: ['status', 'snoozedUntil'].slice(0, _status === 'snoozed' ? 2 : 1),
          status: 'open',
          snoozedUntil: null,
          assignee: null,
          team: null,
          customer: {},
          metadata: {},
        },
      });
      const read = await inbox.get(id);
      expect(read.body).toMatchObject({
        status: 'open',
        snoozedUntil: null,
        lastActivityAt: clock.time,
      });
      expect(read.headers.etag).toMatch(/\.4"$/);
      events.close();
    });

    it('an agent post does not reopen; a customer post to an open or pending one takes one seq', async () => {
      const { id } = await inbox.create({ status: 'pending' });
      expect((await inbox.post(id, 'customer', 'hi')).seq).toBe(1);
      expect((await inbox.get(id)).body).toMatchObject({ status: 'pending' });
      expect((await inbox.patch(id, { status: 'resolved' })).status).toBe(200); // 2
      expect((await inbox.post(id, 'agent', 'closing note')).seq).toBe(3);
      expect((await inbox.get(id)).body).toMatchObject({ status: 'resolved' });
      expect((await inbox.post(id, 'customer', 'wait')).seq).toBe(4);
      expect((await inbox.post(id, 'customer', 'again')).seq).toBe(6);
      expect((await inbox.get(id)).headers.etag).toMatch(/\.6"$/);
    });
  });
});
