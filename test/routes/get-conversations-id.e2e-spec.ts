import { History, UNKNOWN_ID, useApp } from '../utils/api';
import { API_KEYS, BACKEND_KEY, bearer } from '../utils/credentials';
import { etagSeq, inboxClient, useListeningApp } from '../utils/inbox';
import { expectProblem } from '../utils/problem';

// Route order (the inbox's routes are declared before this one): counts and events reach
// their handlers in get-conversations-counts and get-conversations-events; PATCH and claim
// on a non-UUID id answer 404 conversation_not_found in their own files.
describe('GET /api/conversations/{id}', () => {
  describe('default limits', () => {
    const { clock, http, createConversation, post, history } = useApp();

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
        status: 'open',
        snoozedUntil: null,
        assignee: null,
        team: null,
        customer: {},
        unread: { customer: 0, agent: 0 },
        waitingSince: null,
        metadata: {},
        messages: [],
      });
      expect(res.headers.etag).toMatch(/^"\d{1,15}\.0"$/);
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
  describe('inbox state and ETag', () => {
    const { clock, http } = useListeningApp();
    const inbox = inboxClient(http);

    it('shows every state field, unread and waitingSince from the messages, and the ETag', async () => {
      const { id } = await inbox.create({
        assignee: 'agent-1',
        team: 'billing',
        customer: { externalId: 'u-1', name: 'Ada', email: 'ada@example.com' },
        metadata: { plan: 'pro', seats: 3, vip: true },
      });
      const life = /^"(\d+)\.0"$/.exec((await inbox.get(id)).headers.etag as string)?.[1];
      expect(life).toBeDefined();
      clock.advance(1_000);
      await inbox.post(id, 'agent', 'hello');
      clock.advance(1_000);
      const waitingSince = clock.time;
      await inbox.post(id, 'customer', 'one');
      clock.advance(1_000);
      await inbox.post(id, 'customer', 'two');
      const until = clock.time + 60_000;
      expect((await inbox.patch(id, { status: 'snoozed', snoozedUntil: until })).status).toBe(200);

      const res = await inbox.get(id);

      expect(res.status).toBe(200);
      expect(res.headers.etag).toBe(`"${life}.4"`);
      expect(res.body).toMatchObject({
        messageCount: 3,
        status: 'snoozed',
        snoozedUntil: until,
        assignee: 'agent-1',
        team: 'billing',
        customer: { externalId: 'u-1', name: 'Ada', email: 'ada@example.com' },
        unread: { customer: 1, agent: 2 },
        waitingSince,
        metadata: { plan: 'pro', seats: 3, vip: true },
      });

      // The ETag follows every seq, messages' too; reading moves nothing.
      await inbox.post(id, 'agent', 'three');
      expect(etagSeq(await inbox.etag(id))).toBe(5);
      expect(etagSeq(await inbox.etag(id))).toBe(5);
    });

    it('reads a due snooze as open from snoozedUntil on', async () => {
      const { id } = await inbox.create();
      const until = clock.time + 5_000;
      expect((await inbox.patch(id, { status: 'snoozed', snoozedUntil: until })).status).toBe(200);
      clock.time = until - 1;
      expect((await inbox.get(id)).body).toMatchObject({ status: 'snoozed', snoozedUntil: until });
      clock.time = until;
      expect((await inbox.get(id)).body).toMatchObject({ status: 'open', snoozedUntil: null });
    });
  });

  describe('access control (API_KEYS set): what a customer token sees', () => {
    const { http } = useListeningApp({ API_KEYS });
    const withKey = inboxClient(http, bearer(BACKEND_KEY));

    it('status, snoozedUntil, unread.customer and customer.name only', async () => {
      const { id, customerToken } = await withKey.create({
        status: 'pending',
        assignee: 'agent-1',
        team: 'billing',
        customer: { externalId: 'u-1', name: 'Ada', email: 'ada@example.com' },
        metadata: { plan: 'pro' },
      });
      await withKey.post(id, 'agent', 'hello');
      await withKey.post(id, 'customer', 'hi');

      const agent = await withKey.get(id);
      const customer = await inboxClient(http, bearer(customerToken)).get(id);

      expect(customer.status).toBe(200);
      const { messages, ...rest } = customer.body as Record<string, unknown>;
      expect(messages).toEqual((agent.body as Record<string, unknown>).messages);
      expect(rest).toEqual({
        id,
        conversationId: id,
        createdAt: expect.any(Number),
        lastActivityAt: expect.any(Number),
        messageCount: 2,
        lastRead: { customer: 0, agent: 0 },
        status: 'pending',
        snoozedUntil: null,
        customer: { name: 'Ada' },
        unread: { customer: 1 },
      });
      for (const hidden of ['ada@example.com', 'u-1', 'agent-1', 'billing', 'plan']) {
        expect(customer.text).not.toContain(hidden);
      }
      expect(agent.body).toMatchObject({
        assignee: 'agent-1',
        team: 'billing',
        customer: { externalId: 'u-1', name: 'Ada', email: 'ada@example.com' },
        unread: { customer: 1, agent: 1 },
        waitingSince: expect.any(Number),
        metadata: { plan: 'pro' },
      });
    });

    it('a customer without a name: customer {}', async () => {
      const { id, customerToken } = await withKey.create({ customer: { externalId: 'u-2' } });
      const res = await inboxClient(http, bearer(customerToken)).get(id);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ customer: {}, unread: { customer: 0 } });
      expect(res.text).not.toContain('u-2');
    });
  });
});
