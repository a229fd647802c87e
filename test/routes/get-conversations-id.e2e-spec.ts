import { History, UNKNOWN_ID, useApp } from '../utils/api';
import { expectProblem } from '../utils/problem';

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
});
