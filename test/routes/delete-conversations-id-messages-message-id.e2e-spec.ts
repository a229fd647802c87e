import { UNKNOWN_ID, useApp } from '../utils/api';
import { expectProblem } from '../utils/problem';

describe('DELETE /api/conversations/{id}/messages/{messageId}', () => {
  describe('default limits', () => {
    const { clock, http, createConversation, post, history, expectUnchanged } = useApp();

    it('deletes a message: 200 {success, messageId}; gone from the history; activity moves', async () => {
      const conversation = await createConversation();
      const keep = await post(conversation.id, { sender: 'customer', content: 'keep' });
      const drop = await post(conversation.id, { sender: 'agent', content: 'drop' });
      expect((await history(conversation.id)).waitingSince).toBeNull();
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
        status: 'open',
        snoozedUntil: null,
        assignee: null,
        team: null,
        customer: {},
        unread: { customer: 0, agent: 1 },
        // Recomputed: with the agent's answer gone, the customer waits since their message.
        waitingSince: keep.createdAt,
        metadata: {},
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
});
