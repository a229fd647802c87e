import request from 'supertest';
import { hashToken } from '../../src/access/customer-tokens';
import { ConversationRepository } from '../../src/conversations/conversation.repository';
import { InMemoryConversationRepository } from '../../src/conversations/repositories/memory/in-memory-conversation.repository';
import { Conversation, useApp } from '../utils/api';
import { useTestApp } from '../utils/create-app';
import {
  API_KEYS,
  BACKEND_KEY,
  bearer,
  CONSOLE_KEY,
  Created,
  useAppWithKeys,
} from '../utils/credentials';
import { expectProblem, expectProblemCode, FieldError, UUID_V4 } from '../utils/problem';

describe('POST /api/conversations', () => {
  describe('default limits', () => {
    const { clock, http, createConversation } = useApp();

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

  describe('the optional body: the initial state (open mode)', () => {
    const { clock, http, post, history } = useApp();
    const countsNow = async () =>
      (await http().get('/api/conversations/counts')).body as Record<string, number>;

    it('sets status (open or pending), assignee, team, customer and metadata, taking no seq', async () => {
      const res = await http()
        .post('/api/conversations')
        .send({
          status: 'pending',
          assignee: 'agent-1',
          team: 'billing',
          customer: { email: 'ada@example.com', name: 'Ada', externalId: 'u-1' },
          metadata: { plan: 'pro', seats: 3, vip: false },
        });

      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        conversationId: expect.stringMatching(UUID_V4),
        id: expect.stringMatching(UUID_V4),
        createdAt: clock.time,
        lastActivityAt: clock.time,
        messageCount: 0,
        customerToken: expect.any(String),
      });
      const { id } = res.body as Conversation;
      const read = await http().get(`/api/conversations/${id}`);
      expect(read.headers.etag).toMatch(/\.0"$/);
      expect(read.body).toMatchObject({
        status: 'pending',
        snoozedUntil: null,
        assignee: 'agent-1',
        team: 'billing',
        customer: { externalId: 'u-1', name: 'Ada', email: 'ada@example.com' },
        metadata: { plan: 'pro', seats: 3, vip: false },
      });
      expect((await post(id, { sender: 'agent', content: 'first' })).seq).toBe(1);
      expect((await history(id)).messages).toHaveLength(1);
    });

    it.each<[string, unknown, FieldError[]]>([
      [
        'status snoozed',
        { status: 'snoozed' },
        [{ field: 'status', message: 'status must be one of: open, pending' }],
      ],
      [
        'status resolved',
        { status: 'resolved' },
        [{ field: 'status', message: 'status must be one of: open, pending' }],
      ],
      [
        'the reserved assignee "none"',
        { assignee: 'none' },
        [
          {
            field: 'assignee',
            message: 'assignee must not be "none": it is reserved for the list filters',
          },
        ],
      ],
      [
        'a team with a space',
        { team: 'a b' },
        [{ field: 'team', message: 'team must match ^[A-Za-z0-9._:@-]{1,128}$, or be null' }],
      ],
      [
        'a null assignee',
        { assignee: null },
        [
          {
            field: 'assignee',
            message: 'assignee must match ^[A-Za-z0-9._:@-]{1,128}$, or be null',
          },
        ],
      ],
      [
        'an unknown customer field',
        { customer: { phone: '1' } },
        [{ field: 'customer.phone', message: 'property customer.phone should not exist' }],
      ],
      [
        'a null customer name',
        { customer: { name: null } },
        [
          {
            field: 'customer.name',
            message:
              'customer.name must be text of 1 to 256 characters, without control characters',
          },
        ],
      ],
      [
        'a bad metadata key',
        { metadata: { 'a/b': 1 } },
        [{ field: 'metadata.a/b', message: 'metadata keys must match ^[A-Za-z0-9_.-]{1,64}$' }],
      ],
      [
        'a metadata key __proto__',
        JSON.parse('{"metadata":{"__proto__":"x"}}') as unknown,
        [{ field: 'metadata.__proto__', message: 'metadata keys must not be __proto__' }],
      ],
      [
        'a null metadata value',
        { metadata: { a: null } },
        [
          {
            field: 'metadata.a',
            message: 'metadata.a must be a string, a finite number or a boolean',
          },
        ],
      ],
      [
        'metadata of 51 keys',
        { metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i])) },
        [{ field: 'metadata', message: 'metadata holds at most 50 keys' }],
      ],
      [
        'metadata over 4 KB',
        {
          metadata: Object.fromEntries(
            Array.from({ length: 20 }, (_, i) => [`k${i}`, 'x'.repeat(250)]),
          ),
        },
        [{ field: 'metadata', message: 'metadata holds at most 4096 bytes as compact JSON' }],
      ],
    ])('400 validation_failed for %s, and nothing created', async (_name, body, errors) => {
      const before = await countsNow();
      const res = await http()
        .post('/api/conversations')
        .send(body as object);
      expectProblem(res, 400, 'validation_failed', errors);
      expect(await countsNow()).toEqual(before);
    });
  });

  describe('with MAX_CONVERSATIONS=2', () => {
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

  describe('with BODY_LIMIT=1kb', () => {
    const { http } = useApp({ BODY_LIMIT: '1kb' });

    it('413 payload_too_large when creating a conversation with a large body', async () => {
      const res = await http()
        .post('/api/conversations')
        .send({ padding: 'x'.repeat(2_000) });

      expectProblem(res, 413, 'payload_too_large');
    });
  });

  describe('access control (API_KEYS set)', () => {
    const { app, http, create } = useAppWithKeys();

    it('returns a token that names the conversation; the store keeps only its hash', async () => {
      const { id, customerToken } = await create();
      expect(customerToken).toMatch(new RegExp(`^${id}\\.[A-Za-z0-9_-]{43}$`));
      const repository = app().get(ConversationRepository) as InMemoryConversationRepository;
      expect(await repository.customerToken(id)).toEqual({
        hash: hashToken(customerToken),
        anonymous: false, // minted with an API key
      });
      const secret = customerToken.split('.')[1];
      expect([...repository.snapshotLines()].join('\n')).not.toContain(secret);
    });

    it('replays a create only to the caller that made it, with a fresh token', async () => {
      const key = { 'Idempotency-Key': 'access-create-1' };
      const first = await http().post('/api/conversations').set(bearer(BACKEND_KEY)).set(key);
      const replay = await http().post('/api/conversations').set(bearer(BACKEND_KEY)).set(key);
      const otherCaller = await http().post('/api/conversations').set(bearer(CONSOLE_KEY)).set(key);

      const firstBody = first.body as Created;
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect((replay.body as Created).id).toBe(firstBody.id);
      expect(otherCaller.headers['idempotent-replayed']).toBeUndefined();
      expect((otherCaller.body as Created).id).not.toBe(firstBody.id);

      // The replayed token replaces the first one, which was never kept anywhere.
      const fresh = (replay.body as Created).customerToken;
      expect(fresh).not.toBe(firstBody.customerToken);
      expect(
        (await http().get(`/api/conversations/${firstBody.id}`).set(bearer(fresh))).status,
      ).toBe(200);
      expectProblemCode(
        await http().get(`/api/conversations/${firstBody.id}`).set(bearer(firstBody.customerToken)),
        401,
        'unauthorized',
      );
    });
  });

  describe('PUBLIC_CONVERSATIONS=true', () => {
    const app = useTestApp({ env: { API_KEYS, PUBLIC_CONVERSATIONS: 'true' } });
    const http = () => request(app().getHttpServer());

    it('lets anyone open a conversation and get its token, but not read without it', async () => {
      const created = await http().post('/api/conversations');
      expect(created.status).toBe(201);
      const { id, customerToken } = created.body as Created;

      expectProblemCode(await http().get(`/api/conversations/${id}`), 401, 'unauthorized');
      expect((await http().get(`/api/conversations/${id}`).set(bearer(customerToken))).status).toBe(
        200,
      );
    });

    it('a create without a key may set customer.name and customer.email only', async () => {
      const created = await http()
        .post('/api/conversations')
        .send({ customer: { name: 'Ada', email: 'ada@example.com' } });
      expect(created.status).toBe(201);
      const { id } = created.body as Created;
      const read = await http().get(`/api/conversations/${id}`).set(bearer(BACKEND_KEY));
      expect(read.body).toMatchObject({
        status: 'open',
        assignee: null,
        customer: { name: 'Ada', email: 'ada@example.com' },
        metadata: {},
      });

      const refused = await http()
        .post('/api/conversations')
        .send({
          status: 'pending',
          assignee: 'agent-1',
          team: 'billing',
          customer: { externalId: 'u-1', name: 'Ada' },
          metadata: { plan: 'pro' },
        });
      expectProblem(refused, 400, 'validation_failed', [
        { field: 'status', message: 'status takes an API key' },
        { field: 'assignee', message: 'assignee takes an API key' },
        { field: 'team', message: 'team takes an API key' },
        { field: 'metadata', message: 'metadata takes an API key' },
        { field: 'customer.externalId', message: 'customer.externalId takes an API key' },
      ]);
    });

    it('a create with a key may set every field', async () => {
      const created = await http()
        .post('/api/conversations')
        .set(bearer(BACKEND_KEY))
        .send({ status: 'pending', assignee: 'agent-1', customer: { externalId: 'u-1' } });
      expect(created.status).toBe(201);
      const { id } = created.body as Created;
      const read = await http().get(`/api/conversations/${id}`).set(bearer(BACKEND_KEY));
      expect(read.body).toMatchObject({
        status: 'pending',
        assignee: 'agent-1',
        customer: { externalId: 'u-1' },
      });
    });

    it('still refuses a wrong credential on create', async () => {
      expectProblemCode(
        await http().post('/api/conversations').set(bearer('not-a-key-at-all-0000')),
        401,
        'unauthorized',
      );
    });
  });
});
