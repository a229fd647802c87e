import fc from 'fast-check';
import request from 'supertest';
import { useTestApp } from './utils/create-app';

interface ModelMessage {
  id: string;
  seq: number;
  sender: string;
  content: string;
  timestamp: number;
}

interface ModelConversation {
  id: string;
  lastSeq: number;
  messages: ModelMessage[];
}

type Step =
  | { kind: 'create' }
  | { kind: 'post'; c: number; sender: 'customer' | 'agent'; content: string; timestamp: number }
  | { kind: 'get'; c: number }
  | { kind: 'delete'; c: number; m: number }
  | { kind: 'deleteUnknown'; c: number }
  | { kind: 'page'; c: number; cursor: 'after' | 'before' | 'none'; at: number; limit: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>({ kind: 'create' }),
  fc.record({
    kind: fc.constant('post' as const),
    c: fc.nat(4),
    sender: fc.constantFrom('customer' as const, 'agent' as const),
    content: fc.string({ minLength: 1, maxLength: 20 }).filter((s) => /\S/.test(s)),
    timestamp: fc.integer({ min: 0, max: 50 }),
  }),
  fc.record({ kind: fc.constant('get' as const), c: fc.nat(4) }),
  fc.record({ kind: fc.constant('delete' as const), c: fc.nat(4), m: fc.nat(20) }),
  fc.record({ kind: fc.constant('deleteUnknown' as const), c: fc.nat(4) }),
  fc.record({
    kind: fc.constant('page' as const),
    c: fc.nat(4),
    cursor: fc.constantFrom('after' as const, 'before' as const, 'none' as const),
    at: fc.integer({ min: 0, max: 30 }),
    limit: fc.integer({ min: 1, max: 8 }),
  }),
);

/** Chronological, as the whole-history GET lists them: timestamp, then seq. */
const chronological = (messages: ModelMessage[]) =>
  [...messages].sort((a, b) => a.timestamp - b.timestamp || a.seq - b.seq);

/** What GET .../messages should give for a query, from the model. */
function expectedPage(conversation: ModelConversation, s: Extract<Step, { kind: 'page' }>) {
  const bySeq = [...conversation.messages].sort((a, b) => a.seq - b.seq);
  if (s.cursor === 'after') {
    const rest = bySeq.filter((m) => m.seq > s.at);
    return { seqs: rest.slice(0, s.limit).map((m) => m.seq), hasMore: rest.length > s.limit };
  }
  const before = s.cursor === 'before' ? bySeq.filter((m) => m.seq < Math.max(s.at, 1)) : bySeq;
  const page = before.slice(Math.max(0, before.length - s.limit));
  return { seqs: page.map((m) => m.seq), hasMore: before.length > s.limit };
}

describe('the server agrees with a simple model (fast-check)', () => {
  const app = useTestApp();

  it('for any sequence of create, post, get, delete and page', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), async (steps) => {
        const http = request(app().getHttpServer());
        const model: ModelConversation[] = [];
        for (const s of steps) {
          if (s.kind === 'create') {
            const res = await http.post('/api/conversations');
            expect(res.status).toBe(201);
            model.push({ id: (res.body as { id: string }).id, lastSeq: 0, messages: [] });
            continue;
          }
          const conversation = model[s.c % Math.max(model.length, 1)];
          if (!conversation) {
            continue; // nothing created yet
          }
          const base = `/api/conversations/${conversation.id}`;
          if (s.kind === 'post') {
            const res = await http
              .post(`${base}/messages`)
              .send({ sender: s.sender, content: s.content, timestamp: s.timestamp });
            expect(res.status).toBe(201);
            const seq = ++conversation.lastSeq;
            expect(res.body).toMatchObject({ seq, sender: s.sender, content: s.content });
            conversation.messages.push({ ...s, id: (res.body as { id: string }).id, seq });
          } else if (s.kind === 'get') {
            const res = await http.get(base);
            expect(res.status).toBe(200);
            const body = res.body as { messageCount: number; messages: ModelMessage[] };
            expect(body.messageCount).toBe(conversation.messages.length);
            expect(body.messages.map((m) => [m.id, m.seq, m.content])).toEqual(
              chronological(conversation.messages).map((m) => [m.id, m.seq, m.content]),
            );
          } else if (s.kind === 'delete') {
            const target = conversation.messages[s.m % Math.max(conversation.messages.length, 1)];
            if (!target) {
              continue;
            }
            const res = await http.delete(`${base}/messages/${target.id}`);
            expect(res.status).toBe(200);
            conversation.lastSeq++;
            conversation.messages = conversation.messages.filter((m) => m !== target);
          } else if (s.kind === 'deleteUnknown') {
            const res = await http.delete(`${base}/messages/00000000-0000-4000-8000-000000000000`);
            expect(res.status).toBe(404);
            expect(res.body).toMatchObject({ code: 'message_not_found' });
          } else {
            const query =
              s.cursor === 'none'
                ? `?limit=${s.limit}`
                : `?${s.cursor}=${s.cursor === 'before' ? Math.max(s.at, 1) : s.at}&limit=${s.limit}`;
            const res = await http.get(`${base}/messages${query}`);
            expect(res.status).toBe(200);
            const body = res.body as { messages: ModelMessage[]; hasMore: boolean };
            expect({ seqs: body.messages.map((m) => m.seq), hasMore: body.hasMore }).toEqual(
              expectedPage(conversation, s),
            );
          }
        }
      }),
      { numRuns: 60 },
    );
  });
});
