import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { ConversationRepository } from '../src/conversations/conversation.repository';
import { createTestApp } from './utils/create-app';
import { API_KEYS, BACKEND_KEY, bearer } from './utils/credentials';
import { eventually, WebhookReceiver } from './utils/webhook-receiver';

/**
 * Webhooks end to end on the in-memory store (one process): real receivers on 127.0.0.1,
 * every delivery verified with the npm `standardwebhooks` package as a receiver would.
 */

const FAST = {
  API_KEYS,
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
  WEBHOOK_RETRY_SCHEDULE: '0.05,0.1,0.4',
  WEBHOOK_TIMEOUT_MS: '500',
};

const compact = (id: string) => id.replace(/-/g, '');

describe('Webhooks (in memory, one process)', () => {
  jest.setTimeout(30_000);
  let app: NestExpressApplication;
  const receivers: WebhookReceiver[] = [];
  const http = () => request(app.getHttpServer());
  const key = bearer(BACKEND_KEY);

  beforeAll(async () => {
    app = await createTestApp({ env: FAST });
  });
  afterAll(async () => {
    await app.close();
    await Promise.all(receivers.map((r) => r.stop()));
  });

  async function receiver(): Promise<WebhookReceiver> {
    const r = await WebhookReceiver.start();
    receivers.push(r);
    return r;
  }

  async function endpoint(url: string, events?: string[]): Promise<{ id: string; secret: string }> {
    const res = await http()
      .post('/api/webhooks')
      .set(key)
      .send({ url, ...(events ? { events } : {}) });
    expect(res.status).toBe(201);
    return res.body as { id: string; secret: string };
  }

  async function remove(id: string): Promise<void> {
    expect((await http().delete(`/api/webhooks/${id}`).set(key)).status).toBe(200);
  }

  it('delivers every kind of change once, signed, with ids stable per change', async () => {
    const r = await receiver();
    const ep = await endpoint(r.url);
    const created = await http().post('/api/conversations').set(key);
    const id = (created.body as { id: string }).id;
    const post = await http()
      .post(`/api/conversations/${id}/messages`)
      .set(key)
      .send({ sender: 'customer', content: 'Where is my order?' });
    expect(post.status).toBe(201);
    const messageId = (post.body as { id: string }).id;
    await http().post(`/api/conversations/${id}/read`).set(key).send({ sender: 'agent', seq: 1 });
    await http().post(`/api/conversations/${id}/claim`).set(key).send({ assignee: 'agent-1' });
    await http().delete(`/api/conversations/${id}/messages/${messageId}`).set(key);
    await http().post(`/api/conversations/${id}/typing`).set(key).send({ sender: 'agent' });

    await eventually(() => r.received.length >= 5, 5_000, 'five deliveries');
    await new Promise((resolve) => setTimeout(resolve, 100)); // nothing more comes
    expect(r.received.map((x) => x.event.type)).toEqual([
      'conversation.created',
      'message.created',
      'conversation.read',
      'conversation.updated',
      'message.deleted',
    ]);
    for (const x of r.received) {
      expect(r.verifiedWith(x, ep.secret)).toBe(true);
      expect(x.event.id).toBe(x.id);
      expect(x.event.data.conversationId).toBe(id);
    }
    const life = /^evt_[0-9a-f]{32}_(\d+)_created$/.exec(r.received[0].id)?.[1];
    expect(life).toBeDefined();
    expect(r.ids()).toEqual([
      `evt_${compact(id)}_${life}_created`,
      `evt_${compact(id)}_${life}_1`,
      `evt_${compact(id)}_${life}_2`,
      `evt_${compact(id)}_${life}_3`,
      `evt_${compact(id)}_${life}_4`,
    ]);
    const message = r.received[1].event.data;
    expect(message).toMatchObject({
      seq: 1,
      change: { id: messageId, content: 'Where is my order?' },
    });
    await remove(ep.id);
  });

  it('sends each endpoint only the events it takes, and none after its DELETE', async () => {
    const all = await receiver();
    const messagesOnly = await receiver();
    const a = await endpoint(all.url);
    const m = await endpoint(messagesOnly.url, ['message.*']);
    const id = ((await http().post('/api/conversations').set(key)).body as { id: string }).id;
    await http()
      .post(`/api/conversations/${id}/messages`)
      .set(key)
      .send({ sender: 'agent', content: 'x' });
    await eventually(() => all.received.length === 2 && messagesOnly.received.length === 1);
    expect(messagesOnly.received[0].event.type).toBe('message.created');
    await remove(m.id);
    await http()
      .post(`/api/conversations/${id}/messages`)
      .set(key)
      .send({ sender: 'agent', content: 'y' });
    await eventually(() => all.received.length === 3);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(messagesOnly.received).toHaveLength(1);
    await remove(a.id);
  });

  it('retries 500s on the schedule and delivers once the receiver answers 2xx', async () => {
    let failures = 2;
    const r = await receiver();
    r.answer = () => (failures-- > 0 ? { status: 500 } : { status: 200 });
    const ep = await endpoint(r.url, ['conversation.created']);
    await http().post('/api/conversations').set(key);
    await eventually(() => r.received.length === 3, 5_000, 'three attempts');
    expect(new Set(r.ids()).size).toBe(1);
    expect(new Set(r.received.map((x) => x.body)).size).toBe(1); // the same body each attempt
    // The receiver records a request before it answers: the log settles just after.
    const delivery = await eventually(async () => {
      const log = await http().get(`/api/webhooks/${ep.id}/deliveries`).set(key);
      expect(log.status).toBe(200);
      const [d] = (
        log.body as { deliveries: { status: string; attempts: { statusCode: number }[] }[] }
      ).deliveries;
      return d.status === 'pending' ? null : d;
    }, 5_000);
    expect(delivery.status).toBe('succeeded');
    expect(delivery.attempts.map((a) => a.statusCode)).toEqual([500, 500, 200]);
    await remove(ep.id);
  });

  it('a receiver down for a while gets everything once it is back', async () => {
    const r = await receiver();
    const port = r.port;
    const ep = await endpoint(r.url, ['message.created']);
    await r.stop();
    const id = ((await http().post('/api/conversations').set(key)).body as { id: string }).id;
    for (let i = 0; i < 5; i++) {
      await http()
        .post(`/api/conversations/${id}/messages`)
        .set(key)
        .send({ sender: 'agent', content: `m${i}` });
    }
    // Back within the retry schedule's half second: every delivery has attempts left.
    await r.restart(port);
    await eventually(() => new Set(r.ids()).size === 5, 5_000, 'five messages');
    expect(r.received.every((x) => r.verifiedWith(x, ep.secret))).toBe(true);
    await remove(ep.id);
  });

  it('410 disables the endpoint (reason gone) and nothing more is queued', async () => {
    const r = await receiver();
    r.answer = () => ({ status: 410 });
    const ep = await endpoint(r.url, ['conversation.created']);
    await http().post('/api/conversations').set(key);
    await eventually(async () => {
      const res = await http().get(`/api/webhooks/${ep.id}`).set(key);
      return (res.body as { status: string }).status === 'disabled' ? res : null;
    });
    const res = await http().get(`/api/webhooks/${ep.id}`).set(key);
    expect(res.body).toMatchObject({ status: 'disabled', disabledReason: 'gone' });
    await http().post('/api/conversations').set(key);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(r.received).toHaveLength(1);
    await remove(ep.id);
  });

  it('a rotation signs with both secrets for the overlap', async () => {
    const r = await receiver();
    const ep = await endpoint(r.url, ['conversation.created']);
    const rotated = await http().post(`/api/webhooks/${ep.id}/rotate-secret`).set(key);
    expect(rotated.status).toBe(200);
    const secret = (rotated.body as { secret: string }).secret;
    expect(secret).not.toBe(ep.secret);
    await http().post('/api/conversations').set(key);
    await eventually(() => r.received.length === 1);
    const [x] = r.received;
    expect(x.signature.split(' ')).toHaveLength(2);
    expect(r.verifiedWith(x, secret)).toBe(true);
    expect(r.verifiedWith(x, ep.secret)).toBe(true);
    await remove(ep.id);
  });

  it('test, retry and recover send again under the same id', async () => {
    const r = await receiver();
    r.answer = () => ({ status: 500 });
    const ep = await endpoint(r.url, ['conversation.created']);
    const since = Date.now();
    await http().post('/api/conversations').set(key);
    await eventually(() => r.received.length === 4, 5_000, 'four attempts'); // 1 + 3 retries
    const failed = await eventually(async () => {
      const res = await http().get(`/api/webhooks/${ep.id}/deliveries?status=failed`).set(key);
      const list = (res.body as { deliveries: { id: string }[] }).deliveries;
      return list.length === 1 ? list : null;
    }).then((list) => list as { id: string }[]);
    r.answer = () => ({ status: 204 });
    const retried = await http()
      .post(`/api/webhooks/${ep.id}/deliveries/${failed[0].id}/retry`)
      .set(key);
    expect(retried.status).toBe(202);
    await eventually(() => r.received.length === 5);
    expect(r.received[4].id).toBe(failed[0].id);

    r.answer = () => ({ status: 500 });
    await http().post('/api/conversations').set(key);
    await eventually(() => r.received.length === 9, 5_000, 'the second one failing');
    await eventually(async () => {
      const res = await http().get(`/api/webhooks/${ep.id}/deliveries?status=failed`).set(key);
      return (res.body as { deliveries: unknown[] }).deliveries.length === 1;
    });
    r.answer = () => ({ status: 204 });
    const recovered = await http().post(`/api/webhooks/${ep.id}/recover`).set(key).send({ since });
    expect(recovered.status).toBe(202);
    expect(recovered.body).toEqual({ requeued: 1 });
    await eventually(() => r.received.length === 10);

    const test = await http().post(`/api/webhooks/${ep.id}/test`).set(key);
    expect(test.status).toBe(202);
    const deliveryId = (test.body as { deliveryId: string }).deliveryId;
    await eventually(() => r.ids().includes(deliveryId));
    expect(r.received.find((x) => x.id === deliveryId)?.event.type).toBe('webhook.test');
    await remove(ep.id);
  });

  it('before an eviction: the transcript in parts, then conversation.evicted', async () => {
    const r = await receiver();
    const ep = await endpoint(r.url, ['conversation.transcript', 'conversation.evicted']);
    const id = ((await http().post('/api/conversations').set(key)).body as { id: string }).id;
    const content = 'x'.repeat(9_000);
    for (let i = 0; i < 40; i++) {
      await http()
        .post(`/api/conversations/${id}/messages`)
        .set(key)
        .send({ sender: 'agent', content });
    }
    await app.get(ConversationRepository).evictInactive(Date.now() + 24 * 3_600_000);
    // Every conversation of this suite is evicted: this one's events are those named for it.
    const mine = (type: string) => r.ofType(type).filter((x) => x.event.data.conversationId === id);
    // No order between events: wait for the eviction and for every part the parts announce.
    await eventually(
      () => {
        const parts = mine('conversation.transcript');
        const announced = parts[0] ? Number(parts[0].event.data.parts) : Infinity;
        return mine('conversation.evicted').length === 1 && parts.length === announced;
      },
      5_000,
      'the eviction and every transcript part',
    );
    const parts = mine('conversation.transcript').sort(
      (a, b) => Number(a.event.data.part) - Number(b.event.data.part),
    );
    expect(parts.length).toBeGreaterThan(1);
    const messages = parts.flatMap((p) => p.event.data.messages as { seq: number }[]);
    expect(messages.map((m) => m.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    for (const p of parts) {
      expect(Buffer.byteLength(p.body)).toBeLessThanOrEqual(256 * 1024);
      expect(p.event.data).toMatchObject({ conversationId: id, parts: parts.length, seq: 40 });
    }
    expect(mine('conversation.evicted')[0].event.data).toMatchObject({
      conversationId: id,
      seq: 40,
      change: { lastSeq: 40 },
    });
    await remove(ep.id);
  });
});

describe('Webhooks without API_KEYS', () => {
  let app: NestExpressApplication;
  beforeAll(async () => {
    app = await createTestApp({ env: {} });
  });
  afterAll(() => app.close());

  it.each([
    ['post', '/api/webhooks'],
    ['get', '/api/webhooks'],
    ['get', '/api/webhooks/ep_00000000000000000000000000000000'],
  ] as const)('%s %s answers 403 api_keys_required', async (method, path) => {
    const res = await request(app.getHttpServer())
      [method](path)
      .send({ url: 'https://example.com' });
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ code: 'api_keys_required' });
  });
});
