import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { ConversationRepository } from '../src/conversations/conversation.repository';
import { useTestApp } from './utils/create-app';

interface Page {
  messages: { id: string; seq: number; content: string }[];
  hasMore: boolean;
}

const N = 100_000;

describe('GET /api/conversations/:id/messages (pages)', () => {
  const app = useTestApp({ env: { MAX_MESSAGES_PER_CONVERSATION: String(N) } });
  let id: string;

  beforeAll(async () => {
    // Seeded through the store: 100,000 posts over HTTP would only test patience.
    // Active now (real time): the app's eviction job runs every minute on the real clock, and
    // would evict a conversation last active at the epoch if a minute turned during the suite.
    const repository = app().get(ConversationRepository);
    const now = Date.now();
    id = (await repository.createConversation({ id: randomUUID(), now, maxConversations: 10 })).id;
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
    expect(body.errors).toEqual([{ field: 'cursor', message: 'property cursor should not exist' }]);
  });

  it('answers 404 for an unknown conversation', async () => {
    const res = await request(app().getHttpServer()).get(
      `/api/conversations/${randomUUID()}/messages`,
    );
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ code: 'conversation_not_found' });
  });
});
