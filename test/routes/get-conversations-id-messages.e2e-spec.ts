import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { ConversationRepository } from '../../src/conversations/conversation.repository';
import { useTestApp, useTestAppWithConversation } from '../utils/create-app';
import { expectProblemDetail } from '../utils/problem';

interface Page {
  messages: { id: string; seq: number; content: string }[];
  hasMore: boolean;
}

const N = 100_000;

describe('GET /api/conversations/{id}/messages', () => {
  describe('a 100,000-message conversation (pages)', () => {
    const app = useTestApp({ env: { MAX_MESSAGES_PER_CONVERSATION: String(N) } });
    let id: string;

    beforeAll(async () => {
      // Seeded through the store: 100,000 posts over HTTP would only test patience.
      // Active now (real time): the app's eviction job runs every minute on the real clock, and
      // would evict a conversation last active at the epoch if a minute turned during the suite.
      const repository = app().get(ConversationRepository);
      const now = Date.now();
      id = (await repository.createConversation({ id: randomUUID(), now, maxConversations: 10 }))
        .id;
      for (let i = 1; i <= N; i++) {
        await repository.appendMessage(id, {
          id: randomUUID(),
          sender: i % 2 ? 'customer' : 'agent',
          content: `message ${i}`,
          timestamp: i,
          now,
          maxMessages: N,
        });
      }
    }, 60_000);

    const page = async (query: string, status = 200) => {
      const res = await request(app().getHttpServer()).get(
        `/api/conversations/${id}/messages${query}`,
      );
      expect(res.status).toBe(status);
      return res.body as Page;
    };
    const seqs = (p: Page) => p.messages.map((m) => m.seq);
    const range = (from: number, to: number) =>
      Array.from({ length: to - from + 1 }, (_, i) => from + i);

    it('gives the newest 50 of a 100,000-message conversation by default', async () => {
      const newest = await page('');
      expect(seqs(newest)).toEqual(range(N - 49, N));
      expect(newest.hasMore).toBe(true);
      expect(newest.messages[49]).toMatchObject({ seq: N, content: `message ${N}` });
    });

    it('gives the messages after a seq, and says whether newer ones exist', async () => {
      expect(seqs(await page('?after=1000'))).toEqual(range(1001, 1050));
      const last = await page(`?after=${N - 10}&limit=20`);
      expect(seqs(last)).toEqual(range(N - 9, N));
      expect(last.hasMore).toBe(false);
    });

    it('gives the messages before a seq, and says whether older ones exist', async () => {
      const back = await page('?before=500&limit=10');
      expect(seqs(back)).toEqual(range(490, 499));
      expect(back.hasMore).toBe(true);
      const first = await page('?before=3&limit=10');
      expect(seqs(first)).toEqual([1, 2]);
      expect(first.hasMore).toBe(false);
    });

    it.each([
      ['?after=1&before=5', 'before', 'give at most one cursor: after or before'],
      ['?limit=201', 'limit', 'limit must be at most 200'],
      ['?limit=0', 'limit', 'limit must be at least 1'],
      ['?after=-1', 'after', 'after must not be negative'],
      ['?after=abc', 'after', 'after must be an integer seq'],
      ['?before=0', 'before', 'before must be at least 1'],
    ])('refuses %s with 400 validation_failed', async (query, field, message) => {
      const body = (await page(query, 400)) as unknown as { code: string; errors: unknown[] };
      expect(body.code).toBe('validation_failed');
      expect(body.errors).toEqual([{ field, message }]);
    });

    it('refuses an unknown query parameter', async () => {
      const body = (await page('?cursor=5', 400)) as unknown as { errors: unknown[] };
      expect(body.errors).toEqual([
        { field: 'cursor', message: 'property cursor should not exist' },
      ]);
    });

    it('answers 404 for an unknown conversation', async () => {
      const res = await request(app().getHttpServer()).get(
        `/api/conversations/${randomUUID()}/messages`,
      );
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ code: 'conversation_not_found' });
    });
  });

  describe('query parameters: given once, numbers in plain decimal', () => {
    let id: string;
    const { http } = useTestAppWithConversation(3, (opened) => (id = opened));

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
      expectProblemDetail(res, 400, 'validation_failed');
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
});
