import { NestExpressApplication } from '@nestjs/platform-express';
import { SchedulerRegistry } from '@nestjs/schedule';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { Clock } from '../src/common/time/clock';
import { ConversationRepository } from '../src/conversations/conversation.repository';
import { EvictionService } from '../src/eviction/eviction.service';
import { createTestApp } from './utils/create-app';
import { FakeClock } from './utils/fake-clock';

const TTL = 1_000;

const NOT_FOUND = {
  type: 'urn:chat-server:problem:conversation-not-found',
  title: 'Not Found',
  status: 404,
  detail: 'No such conversation.',
  code: 'conversation_not_found',
};

describe('Eviction of inactive conversations (CONVERSATION_TTL_MS=1000)', () => {
  let app: NestExpressApplication;
  let eviction: EvictionService;
  let repository: ConversationRepository;
  const clock = new FakeClock(1_764_201_600_000);
  const http = () => request(app.getHttpServer());

  async function createConversation(): Promise<string> {
    const res = await http().post('/api/conversations');
    expect(res.status).toBe(201);
    return (res.body as { id: string }).id;
  }

  async function postMessage(conversationId: string, content = 'hi'): Promise<string> {
    const res = await http()
      .post(`/api/conversations/${conversationId}/messages`)
      .send({ sender: 'customer', content });
    expect(res.status).toBe(201);
    return (res.body as { id: string }).id;
  }

  async function expectGone(conversationId: string): Promise<void> {
    const res = await http().get(`/api/conversations/${conversationId}`);
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body).toEqual({ ...NOT_FOUND, requestId: res.headers['x-request-id'] });
  }

  async function expectPresent(conversationId: string): Promise<void> {
    const res = await http().get(`/api/conversations/${conversationId}`);
    expect(res.status).toBe(200);
  }

  beforeAll(async () => {
    app = await createTestApp({
      // A schedule that never fires during the run: the tests call sweep() themselves.
      env: { CONVERSATION_TTL_MS: String(TTL), EVICTION_CRON: '0 0 0 1 1 *' },
      override: (b) => b.overrideProvider(Clock).useValue(clock),
    });
    eviction = app.get(EvictionService);
    repository = app.get(ConversationRepository);
  });

  afterAll(async () => {
    await app.close();
  });

  beforeEach(async () => {
    // Start every test from an empty store.
    clock.advance(10 * TTL);
    await eviction.sweep();
    expect((await repository.stats()).conversations).toBe(0);
  });

  it('evicts a conversation idle past the TTL and keeps one with recent activity', async () => {
    const idle = await createConversation();
    const active = await createConversation();
    clock.advance(600);
    await postMessage(active);
    clock.advance(500); // idle: 1100 ms without activity; active: 500 ms

    const evicted = await eviction.sweep();

    expect(evicted).toBe(1);
    await expectGone(idle);
    await expectPresent(active);
    expect((await repository.stats()).conversations).toBe(1);
  });

  it('keeps a conversation idle for exactly the TTL and evicts it 1 ms later', async () => {
    const conversation = await createConversation();
    clock.advance(TTL);

    expect(await eviction.sweep()).toBe(0);
    await expectPresent(conversation);

    clock.advance(1);
    expect(await eviction.sweep()).toBe(1);
    await expectGone(conversation);
  });

  it('returns how many conversations it evicted', async () => {
    const ids = [];
    for (let i = 0; i < 5; i++) {
      ids.push(await createConversation());
    }
    clock.advance(TTL / 2);
    const survivor = await createConversation();
    clock.advance(TTL / 2 + 1);

    expect(await eviction.sweep()).toBe(5);
    expect(await eviction.sweep()).toBe(0);
    for (const id of ids) {
      await expectGone(id);
    }
    await expectPresent(survivor);
  });

  it('does not count reads as activity', async () => {
    const conversation = await createConversation();
    for (let i = 0; i < 3; i++) {
      clock.advance(400);
      await expectPresent(conversation);
    }

    expect(await eviction.sweep()).toBe(1);
    await expectGone(conversation);
  });

  it('counts a delete as activity', async () => {
    const conversation = await createConversation();
    const messageId = await postMessage(conversation);
    clock.advance(900);
    const res = await http().delete(`/api/conversations/${conversation}/messages/${messageId}`);
    expect(res.status).toBe(200);
    clock.advance(900); // 1800 ms since creation, 900 ms since the delete

    expect(await eviction.sweep()).toBe(0);
    await expectPresent(conversation);
  });

  it('answers 404 conversation_not_found to a post or delete on an evicted conversation', async () => {
    const conversation = await createConversation();
    const messageId = await postMessage(conversation);
    clock.advance(TTL + 1);
    expect(await eviction.sweep()).toBe(1);

    const posted = await http()
      .post(`/api/conversations/${conversation}/messages`)
      .send({ sender: 'agent', content: 'too late' });
    const deleted = await http().delete(`/api/conversations/${conversation}/messages/${messageId}`);

    expect(posted.status).toBe(404);
    expect(posted.body).toEqual({ ...NOT_FOUND, requestId: posted.headers['x-request-id'] });
    expect(deleted.status).toBe(404);
    expect(deleted.body).toEqual({ ...NOT_FOUND, requestId: deleted.headers['x-request-id'] });
    expect((await repository.stats()).conversations).toBe(0);
  });

  it('joins a sweep already running: two concurrent calls evict once', async () => {
    for (let i = 0; i < 3; i++) {
      await createConversation();
    }
    clock.advance(TTL + 1);
    const totalBefore = eviction.evictedTotal;

    const first = eviction.sweep();
    const second = eviction.sweep();

    expect(second).toBe(first);
    expect(await Promise.all([first, second])).toEqual([3, 3]);
    expect(eviction.evictedTotal - totalBefore).toBe(3);
    expect(await eviction.sweep()).toBe(0);
    expect(eviction.evictedTotal - totalBefore).toBe(3);
  });

  it('starts a new sweep once the previous one has finished', async () => {
    await createConversation();
    clock.advance(TTL + 1);
    expect(await eviction.sweep()).toBe(1);

    await createConversation();
    clock.advance(TTL + 1);
    expect(await eviction.sweep()).toBe(1);
  });

  it('joins a sweep that is suspended between chunks rather than starting a second one', async () => {
    // More than one eviction chunk (2000), so the first sweep yields to the event loop.
    for (let i = 0; i < 2_500; i++) {
      await repository.createConversation({
        id: randomUUID(),
        now: clock.now(),
        maxConversations: Number.MAX_SAFE_INTEGER,
      });
    }
    clock.advance(TTL + 1);
    const totalBefore = eviction.evictedTotal;

    const first = eviction.sweep();
    // The first chunk is gone and the sweep waits for the event loop to finish the rest.
    expect((await repository.stats()).conversations).toBe(500);
    const second = eviction.sweep();

    expect(second).toBe(first);
    expect(await Promise.all([first, second])).toEqual([2_500, 2_500]);
    expect(eviction.evictedTotal - totalBefore).toBe(2_500);
    expect((await repository.stats()).conversations).toBe(0);
  });

  it('resolves 0 when the store fails, and the next sweep runs normally', async () => {
    await createConversation();
    clock.advance(TTL + 1);
    const spy = jest
      .spyOn(repository, 'evictInactive')
      .mockRejectedValueOnce(new Error('store down'));

    try {
      expect(await eviction.sweep()).toBe(0);
      expect(await eviction.sweep()).toBe(1);
    } finally {
      spy.mockRestore();
    }
  });

  it('registers the sweep as a named cron job on EVICTION_CRON', () => {
    const job = app.get(SchedulerRegistry).getCronJob(EvictionService.JOB_NAME);

    expect(job.cronTime.source).toBe('0 0 0 1 1 *');
  });
});
