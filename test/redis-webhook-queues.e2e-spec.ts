import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { clusterNodeList } from '../src/config/app.config';
import type { WebhookSettings } from '../src/config/app.settings';
import { StoreError } from '../src/common/errors/store-error';
import {
  connectRedis,
  connectRedisCluster,
} from '../src/conversations/repositories/redis/redis-client';
import { RedisStoreConnection } from '../src/conversations/repositories/redis/redis-connection';
import { AttemptOutcome, DeliveryObserver, NextStep } from '../src/webhooks/delivery-policy';
import { HttpWebhookSender } from '../src/webhooks/http-webhook-sender';
import { RedisWebhookStore } from '../src/webhooks/redis/redis-webhook.store';
import { DeliveryView, WebhookEvent } from '../src/webhooks/webhook.model';
import { describeWithRedis, keysUnder } from './utils/redis';
import { describeWithRedisCluster } from './utils/redis-cluster';
import { eventually, WebhookReceiver } from './utils/webhook-receiver';

jest.setTimeout(60_000);

const BASE: Record<string, unknown> = {
  maxEndpoints: 5,
  timeoutMs: 2_000,
  retryScheduleMs: [30, 60],
  disableAfterMs: 3_600_000,
  maxInFlight: 3,
  maxPending: 1_000,
  maxBytes: 1024 * 1024,
  retentionMs: 3_600_000,
  logLimit: 1_000,
  reconcileMs: 5_000,
  allowPrivateNetworks: true,
};

function settingsWith(overrides: Record<string, unknown> = {}): WebhookSettings {
  return { ...BASE, ...overrides } as unknown as WebhookSettings;
}

/** Events as the fan-out queues them: `count` message.created of one conversation. */
function events(count: number, from = 1): WebhookEvent[] {
  const conversation = randomUUID();
  const at = Date.now();
  return Array.from({ length: count }, (_, i) => {
    const seq = from + i;
    const id = `evt_${conversation.replace(/-/g, '')}_1_${seq}`;
    const body = JSON.stringify({
      id,
      type: 'message.created',
      timestamp: new Date(at).toISOString(),
      data: { conversationId: conversation, seq, change: { text: `message ${seq}` } },
    });
    return { id, type: 'message.created', at, body };
  });
}

/** An observer that keeps what it is told. */
class Recorder implements DeliveryObserver {
  readonly attempts: { endpointId: string; outcome: AttemptOutcome; step: NextStep['kind'] }[] = [];
  readonly disables: { endpointId: string; reason: string }[] = [];
  attempted(endpointId: string, outcome: AttemptOutcome, step: NextStep['kind']): void {
    this.attempts.push({ endpointId, outcome, step });
  }
  disabled(endpointId: string, reason: 'gone' | 'failing' | 'backlog'): void {
    this.disables.push({ endpointId, reason });
  }
  lost(): void {}
}

/** Every delivery of an endpoint's log, following cursors, `limit` a page. */
async function allDeliveries(
  store: RedisWebhookStore,
  id: string,
  status?: DeliveryView['status'],
  limit = 7,
): Promise<DeliveryView[]> {
  const all: DeliveryView[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 100; page++) {
    const result = await store.deliveries(id, { status, limit, cursor }, Date.now());
    all.push(...result.deliveries);
    if (!result.nextCursor) {
      return all;
    }
    cursor = result.nextCursor;
  }
  throw new Error('too many pages');
}

/**
 * The suite's body, on one Redis or a Redis Cluster: `client` opens a connection to it as an
 * instance would; `scan` lists the keys under a prefix.
 */
interface Harness {
  open(
    prefix: string,
    settings: WebhookSettings,
    observer?: DeliveryObserver,
  ): Promise<RedisWebhookStore>;
  receiver(): Promise<WebhookReceiver>;
}

function useHarness(connect: () => Promise<Redis | Cluster>, where: () => string): Harness {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch(() => undefined);
    }
  });
  return {
    async open(prefix, settings, observer) {
      const client = await connect();
      const connection = new RedisStoreConnection(client, prefix, where(), 2_000);
      const sender = new HttpWebhookSender({
        timeoutMs: settings.timeoutMs,
        allowPrivateNetworks: true,
      });
      const store = new RedisWebhookStore(connection, prefix, settings, sender, observer);
      cleanups.push(async () => {
        await store.stop({ force: true });
        sender.close();
        client.disconnect();
      });
      return store;
    },
    async receiver() {
      const receiver = await WebhookReceiver.start();
      cleanups.push(() => receiver.stop());
      return receiver;
    },
  };
}

describeWithRedis('Webhook deliveries on Redis (BullMQ)', (redis) => {
  const harness = useHarness(
    () => connectRedis(redis().url, 2_000),
    () => redis().url,
  );

  it('shares endpoints between instances and delivers each event, capped in flight across them', async () => {
    const prefix = redis().newPrefix();
    const settings = settingsWith();
    const [a, b] = [await harness.open(prefix, settings), await harness.open(prefix, settings)];
    await Promise.all([a.start(), b.start()]);
    const receiver = await harness.receiver();
    receiver.answer = () => ({ status: 204, delayMs: 40 });

    const { endpoint, secret } = await a.createEndpoint({ url: receiver.url }, Date.now());
    expect(secret).toMatch(/^whsec_/);
    expect(await b.getEndpoint(endpoint.id, Date.now())).toMatchObject({
      id: endpoint.id,
      url: receiver.url,
      status: 'enabled',
    });
    expect((await b.listEndpoints(Date.now())).map((e) => e.id)).toEqual([endpoint.id]);
    // b runs a worker for it within its sync interval.
    await new Promise((resolve) => setTimeout(resolve, 700));

    const sent = events(30);
    await Promise.all([
      a.queues.enqueue(endpoint.id, sent.slice(0, 15)),
      b.queues.enqueue(endpoint.id, sent.slice(15)),
      // Queued twice: harmless.
      b.queues.enqueue(endpoint.id, sent.slice(0, 5)),
    ]);
    await eventually(
      () => new Set(receiver.ids()).size === sent.length,
      15_000,
      'every event delivered',
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(receiver.ids().sort()).toEqual(sent.map((event) => event.id).sort());
    for (const received of receiver.received) {
      expect(receiver.verifiedWith(received, secret)).toBe(true);
      expect(received.body).toBe(sent.find((event) => event.id === received.id)?.body);
    }
    expect(receiver.maxInFlight).toBeLessThanOrEqual(settings.maxInFlight);
    expect(receiver.maxInFlight).toBeGreaterThan(1);

    // The log, newest first, in pages, the same on either instance.
    await eventually(
      async () => (await allDeliveries(b, endpoint.id, 'succeeded')).length === sent.length,
      5_000,
      'every delivery logged as succeeded',
    );
    const log = await allDeliveries(a, endpoint.id);
    expect(log).toHaveLength(sent.length);
    expect(new Set(log.map((d) => d.id)).size).toBe(sent.length);
    for (let i = 1; i < log.length; i++) {
      expect(log[i - 1].createdAt).toBeGreaterThanOrEqual(log[i].createdAt);
    }
    expect(log[0]).toMatchObject({
      status: 'succeeded',
      nextAttemptAt: null,
      type: 'message.created',
    });
    expect(log[0].attempts).toEqual([
      { at: expect.any(Number), statusCode: 204, durationMs: expect.any(Number), error: null },
    ]);
    expect(await a.pendingCounts()).toEqual({ [endpoint.id]: 0 });
    expect((await b.getEndpoint(endpoint.id, Date.now())).lastSuccessAt).toEqual(
      expect.any(Number),
    );
  });

  it('retries 500s on the schedule, then fails and logs every attempt; retry and recover send again', async () => {
    const prefix = redis().newPrefix();
    const settings = settingsWith({ retryScheduleMs: [30, 60] });
    const recorder = new Recorder();
    const store = await harness.open(prefix, settings, recorder);
    await store.start();
    const receiver = await harness.receiver();
    receiver.answer = () => ({ status: 500 });
    const { endpoint } = await store.createEndpoint({ url: receiver.url }, Date.now());
    const sent = events(3);
    await store.queues.enqueue(endpoint.id, sent);

    await eventually(
      async () => (await allDeliveries(store, endpoint.id, 'failed')).length === 3,
      10_000,
      'three failed deliveries',
    );
    const failed = await allDeliveries(store, endpoint.id, 'failed');
    for (const delivery of failed) {
      expect(delivery.attempts).toHaveLength(3);
      expect(delivery.attempts.map((a) => a.statusCode)).toEqual([500, 500, 500]);
      expect(delivery.attempts[0].error).toBe('status 500');
      // The schedule's delays, ±20%.
      expect(delivery.attempts[1].at - delivery.attempts[0].at).toBeGreaterThanOrEqual(24);
      expect(delivery.attempts[2].at - delivery.attempts[1].at).toBeGreaterThanOrEqual(48);
      expect(delivery.nextAttemptAt).toBeNull();
    }
    expect(receiver.received).toHaveLength(9);
    expect(recorder.attempts.map((a) => a.step).filter((s) => s === 'failed')).toHaveLength(3);
    expect(recorder.attempts.map((a) => a.step).filter((s) => s === 'retry')).toHaveLength(6);
    const view = await store.getEndpoint(endpoint.id, Date.now());
    expect(view.failingSince).toEqual(expect.any(Number));
    expect(view.status).toBe('enabled');
    expect(await store.pendingCounts()).toEqual({ [endpoint.id]: 0 });

    receiver.answer = () => ({ status: 200 });
    await expect(store.retryDelivery(endpoint.id, 'evt_unknown', Date.now())).rejects.toEqual(
      new StoreError('webhook_delivery_not_found'),
    );
    await store.retryDelivery(endpoint.id, sent[0].id, Date.now());
    await eventually(
      () => receiver.received.filter((r) => r.id === sent[0].id).length === 4,
      5_000,
      'the retried delivery',
    );
    expect(await store.recover(endpoint.id, sent[0].at, Date.now())).toEqual({ requeued: 2 });
    await eventually(
      async () => (await allDeliveries(store, endpoint.id, 'succeeded')).length === 3,
      5_000,
      'all three succeeded',
    );
    const retried = (await allDeliveries(store, endpoint.id)).find((d) => d.id === sent[0].id);
    // Its failed attempts are kept beside the new one.
    expect(retried?.attempts.map((a) => a.statusCode)).toEqual([500, 500, 500, 200]);
    expect((await store.getEndpoint(endpoint.id, Date.now())).failingSince).toBeNull();

    // A succeeded delivery is sent again too.
    await store.retryDelivery(endpoint.id, sent[1].id, Date.now());
    await eventually(
      () => receiver.received.filter((r) => r.id === sent[1].id).length === 5,
      5_000,
      'the succeeded delivery sent again',
    );
  });

  it('keeps a delivery in the log when the log is read while its job is being added', async () => {
    const prefix = redis().newPrefix();
    const store = await harness.open(prefix, settingsWith());
    const receiver = await harness.receiver();
    const { endpoint } = await store.createEndpoint({ url: receiver.url }, Date.now());
    const [event] = events(1);
    // add() in two steps, with a read of the log between: reserved (counted and indexed),
    // then the job added. Not started, so the job stays pending.
    await store.queues.recount(endpoint.id, event);
    await store.deliveries(endpoint.id, { limit: 20 }, Date.now());
    const queue = await store.queues.queueOf(endpoint.id);
    await queue.add(event.type, event, store.queues.jobOptions(event));
    const { deliveries } = await store.deliveries(endpoint.id, { limit: 20 }, Date.now());
    expect(deliveries.map((d) => [d.id, d.status])).toEqual([[event.id, 'pending']]);
  });

  it('disables an endpoint failing for WEBHOOK_DISABLE_AFTER_MS once a delivery fails for good', async () => {
    const prefix = redis().newPrefix();
    const recorder = new Recorder();
    const settings = settingsWith({ retryScheduleMs: [10], disableAfterMs: 50 });
    const store = await harness.open(prefix, settings, recorder);
    await store.start();
    const receiver = await harness.receiver();
    receiver.answer = () => ({ status: 500, delayMs: 40 });
    const { endpoint } = await store.createEndpoint({ url: receiver.url }, Date.now());
    await store.queues.enqueue(endpoint.id, events(1));
    await eventually(
      async () => (await store.getEndpoint(endpoint.id, Date.now())).disabledReason === 'failing',
      5_000,
      'the failing disable',
    );
    expect(recorder.disables).toEqual([{ endpointId: endpoint.id, reason: 'failing' }]);
    expect(receiver.received).toHaveLength(2);
  });

  it('disables an endpoint that answers 410, and queues nothing more for it', async () => {
    const prefix = redis().newPrefix();
    const recorder = new Recorder();
    const store = await harness.open(prefix, settingsWith(), recorder);
    await store.start();
    const receiver = await harness.receiver();
    receiver.answer = () => ({ status: 410 });
    const { endpoint } = await store.createEndpoint({ url: receiver.url }, Date.now());
    await store.queues.enqueue(endpoint.id, events(1));
    await eventually(
      async () => (await store.getEndpoint(endpoint.id, Date.now())).status === 'disabled',
    );
    expect(await store.getEndpoint(endpoint.id, Date.now())).toMatchObject({
      status: 'disabled',
      disabledReason: 'gone',
    });
    expect(recorder.disables).toEqual([{ endpointId: endpoint.id, reason: 'gone' }]);
    expect(receiver.received).toHaveLength(1);
    await eventually(async () => (await allDeliveries(store, endpoint.id, 'failed')).length === 1);

    await store.queues.enqueue(endpoint.id, events(2));
    expect(await allDeliveries(store, endpoint.id)).toHaveLength(1);
  });

  it('stops delivering to a disabled endpoint on every instance, and resumes when enabled', async () => {
    const prefix = redis().newPrefix();
    const settings = settingsWith();
    const [a, b] = [await harness.open(prefix, settings), await harness.open(prefix, settings)];
    await Promise.all([a.start(), b.start()]);
    const receiver = await harness.receiver();
    const { endpoint } = await a.createEndpoint({ url: receiver.url }, Date.now());
    await b.updateEndpoint(endpoint.id, { enabled: false }, Date.now());
    // Every instance learns of it within a second (its workers stop; enqueue reads it fresh).
    await a.queues.enqueue(endpoint.id, events(3));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await a.pendingCounts()).toEqual({ [endpoint.id]: 0 });
    // A test event is queued even for a disabled endpoint, and waits for it to be enabled.
    const { deliveryId } = await a.sendTest(endpoint.id, Date.now());
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(receiver.received).toHaveLength(0);
    expect(await b.pendingCounts()).toEqual({ [endpoint.id]: 1 });
    await a.updateEndpoint(endpoint.id, { enabled: true }, Date.now());
    await eventually(() => receiver.ids().includes(deliveryId), 5_000, 'the test event');
    expect(receiver.received).toHaveLength(1);
  });

  it('honours Retry-After on a 503', async () => {
    const prefix = redis().newPrefix();
    const store = await harness.open(prefix, settingsWith({ retryScheduleMs: [10] }));
    await store.start();
    const receiver = await harness.receiver();
    let calls = 0;
    receiver.answer = () =>
      ++calls === 1 ? { status: 503, headers: { 'retry-after': '1' } } : { status: 204 };
    const { endpoint } = await store.createEndpoint({ url: receiver.url }, Date.now());
    await store.queues.enqueue(endpoint.id, events(1));
    await eventually(() => receiver.received.length === 2, 5_000, 'the second attempt');
    const [first, second] = receiver.received;
    expect(second.at - first.at).toBeGreaterThanOrEqual(950);
  });

  it('at its backlog cap, queues what fits and disables the endpoint', async () => {
    const prefix = redis().newPrefix();
    const recorder = new Recorder();
    const store = await harness.open(prefix, settingsWith({ maxPending: 5 }), recorder);
    const receiver = await harness.receiver();
    const { endpoint } = await store.createEndpoint({ url: receiver.url }, Date.now());
    await store.queues.enqueue(endpoint.id, events(4));
    await store.queues.enqueue(endpoint.id, events(2));
    expect(await store.getEndpoint(endpoint.id, Date.now())).toMatchObject({
      disabledReason: 'backlog',
    });
    expect(recorder.disables).toEqual([{ endpointId: endpoint.id, reason: 'backlog' }]);
    // 4 + the one of the next 2 that fits under WEBHOOK_MAX_PENDING=5, as the memory store does.
    expect(await store.pendingCounts()).toEqual({ [endpoint.id]: 5 });

    const big = await harness.open(redis().newPrefix(), settingsWith({ maxBytes: 1_000 }));
    const other = await big.createEndpoint({ url: receiver.url }, Date.now());
    await big.queues.enqueue(other.endpoint.id, events(20));
    expect((await big.getEndpoint(other.endpoint.id, Date.now())).disabledReason).toBe('backlog');
  });

  it('uncounts a count whose job was never added once it stays so, not one on its way', async () => {
    // Not started: only these sweeps run, at the times given.
    const prefix = redis().newPrefix();
    const store = await harness.open(prefix, settingsWith());
    const receiver = await harness.receiver();
    const { endpoint } = await store.createEndpoint({ url: receiver.url }, Date.now());
    const [pending, late] = events(2);
    await store.queues.enqueue(endpoint.id, [pending]);
    const client = await connectRedis(redis().url, 2_000);
    const keys = store.queues.keysOf(endpoint.id);
    const bytesBefore = Number(await client.get(keys.bytes));
    const sweepAll = async (now: number) => {
      let cursor = '0';
      let uncounted = 0;
      do {
        const step = await store.queues.sweep(endpoint.id, cursor, now);
        cursor = step.cursor;
        uncounted += step.uncounted;
      } while (cursor !== '0');
      return uncounted;
    };
    try {
      // As a process that stopped between the count and BullMQ's add leaves it; and one whose
      // add is on its way when the sweep first looks.
      await client.hset(keys.sizes, 'evt_never_added', 300, late.id, Buffer.byteLength(late.body));
      await client.incrby(keys.bytes, 300 + Buffer.byteLength(late.body));
      const t = Date.now();
      expect(await sweepAll(t)).toBe(0);
      await store.queues.enqueue(endpoint.id, [late]);
      expect(await sweepAll(t + 59_999)).toBe(0);
      expect(await sweepAll(t + 60_000)).toBe(1);
      expect((await client.hkeys(keys.sizes)).sort()).toEqual([pending.id, late.id].sort());
      expect(Number(await client.get(keys.bytes))).toBe(bytesBefore + Buffer.byteLength(late.body));
      expect(await store.pendingCounts()).toEqual({ [endpoint.id]: 2 });
      expect(await sweepAll(t + 200_000)).toBe(0);
    } finally {
      client.disconnect();
    }
  });

  it('uncounts deliveries that finished but whose release was lost, and keeps pending ones', async () => {
    const prefix = redis().newPrefix();
    const store = await harness.open(prefix, settingsWith({ retryScheduleMs: [60_000] }));
    await store.start();
    const receiver = await harness.receiver();
    const queued = events(3);
    // The first waits 60 s for its next attempt: pending; the other two succeed.
    receiver.answer = (_req, received) => ({ status: received.id === queued[0].id ? 500 : 204 });
    const { endpoint } = await store.createEndpoint({ url: receiver.url }, Date.now());
    await store.queues.enqueue(endpoint.id, queued);
    await eventually(() => receiver.received.length === 3, 5_000, 'three attempts');
    await eventually(
      async () => (await store.pendingCounts())[endpoint.id] === 1,
      5_000,
      'one pending',
    );
    // As a process that stopped before its release leaves them: the two that succeeded counted
    // again. (The started store sweeps too, every 5 s: either sweep may uncount them.)
    const client = await connectRedis(redis().url, 2_000);
    const keys = store.queues.keysOf(endpoint.id);
    const bytesBefore = Number(await client.get(keys.bytes));
    try {
      await client.hset(keys.sizes, queued[1].id, 100, queued[2].id, 50);
      await client.incrby(keys.bytes, 150);
      let cursor = '0';
      do {
        cursor = (await store.queues.sweep(endpoint.id, cursor)).cursor;
      } while (cursor !== '0');
      expect(await store.pendingCounts()).toEqual({ [endpoint.id]: 1 });
      expect(await client.hkeys(keys.sizes)).toEqual([queued[0].id]);
      expect(Number(await client.get(keys.bytes))).toBe(bytesBefore);
      // The pending one stays counted, pass after pass.
      expect((await store.queues.sweep(endpoint.id)).uncounted).toBe(0);
      expect(await store.pendingCounts()).toEqual({ [endpoint.id]: 1 });
    } finally {
      client.disconnect();
    }
  });

  it('leaves no queue behind when the endpoint is deleted while a fan-out queues for it', async () => {
    const prefix = redis().newPrefix();
    const store = await harness.open(prefix, settingsWith());
    const receiver = await harness.receiver();
    const { endpoint } = await store.createEndpoint({ url: receiver.url }, Date.now());
    // The fan-out read the endpoint, then the DELETE ran (and dropped the queue), then the
    // fan-out queues with what it read.
    const read = (await store.queues.endpointsNow()).find((record) => record.id === endpoint.id);
    expect(read).toBeDefined();
    await store.deleteEndpoint(endpoint.id);
    await store.queues.enqueue(endpoint.id, events(3), read);
    expect(await keysUnder(redis().admin, store.queues.keysOf(endpoint.id).prefix)).toEqual([]);
    expect(receiver.received).toHaveLength(0);
  });

  it('refuses an endpoint past the limit, and loses no concurrent change', async () => {
    const prefix = redis().newPrefix();
    const settings = settingsWith({ maxEndpoints: 3 });
    const [a, b] = [await harness.open(prefix, settings), await harness.open(prefix, settings)];
    const made = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        (i % 2 ? a : b).createEndpoint({ url: `http://127.0.0.1:9/${i}` }, Date.now()),
      ),
    );
    expect(made.filter((m) => m.status === 'fulfilled')).toHaveLength(3);
    for (const refused of made.filter((m) => m.status === 'rejected')) {
      expect((refused as PromiseRejectedResult).reason).toEqual(
        new StoreError('webhook_limit_reached'),
      );
    }
    const [first] = await a.listEndpoints(Date.now());
    await Promise.all([
      a.updateEndpoint(first.id, { description: 'from a' }, Date.now()),
      b.updateEndpoint(first.id, { events: ['message.*'] }, Date.now()),
      a.rotateSecret(first.id, Date.now()),
      b.rotateSecret(first.id, Date.now()),
    ]);
    const view = await b.getEndpoint(first.id, Date.now());
    expect(view).toMatchObject({ description: 'from a', events: ['message.*'] });
    expect(view.previousSecretsExpireAt).toHaveLength(2);
    await expect(a.getEndpoint('ep_nothing', Date.now())).rejects.toEqual(
      new StoreError('webhook_not_found'),
    );
  });

  it('drops the queue and its keys on delete, with another instance running', async () => {
    const prefix = redis().newPrefix();
    const settings = settingsWith();
    const [a, b] = [await harness.open(prefix, settings), await harness.open(prefix, settings)];
    await Promise.all([a.start(), b.start()]);
    const receiver = await harness.receiver();
    const { endpoint } = await a.createEndpoint({ url: receiver.url }, Date.now());
    await a.queues.enqueue(endpoint.id, events(5));
    await eventually(() => receiver.received.length === 5);
    await a.sendTest(endpoint.id, Date.now());
    await eventually(() => receiver.ofType('webhook.test').length === 1);
    const queuePrefix = `${prefix}{wh:${endpoint.id}}`;
    expect((await keysUnder(redis().admin, queuePrefix)).length).toBeGreaterThan(0);

    await b.deleteEndpoint(endpoint.id);
    await expect(a.deleteEndpoint(endpoint.id)).rejects.toEqual(
      new StoreError('webhook_not_found'),
    );
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await keysUnder(redis().admin, queuePrefix)).toEqual([]);
    expect(await redis().admin.hlen(`${prefix}{wh}:ep`)).toBe(0);
  });

  it('aborts an attempt in flight when an instance stops, for another to send', async () => {
    const prefix = redis().newPrefix();
    const settings = settingsWith({ timeoutMs: 10_000 });
    const a = await harness.open(prefix, settings);
    const b = await harness.open(prefix, settings);
    await a.start();
    const receiver = await harness.receiver();
    let hang = true;
    receiver.answer = () => (hang ? { status: 204, delayMs: 3_000 } : { status: 204 });
    const { endpoint } = await a.createEndpoint({ url: receiver.url }, Date.now());
    const [event] = events(1);
    await a.queues.enqueue(endpoint.id, [event]);
    await eventually(() => receiver.inFlight === 1, 5_000, 'the attempt under way');
    const stopping = Date.now();
    await a.stop();
    expect(Date.now() - stopping).toBeLessThan(1_000);
    hang = false;
    await b.start();
    const delivery = await eventually(async () => {
      const succeeded = await allDeliveries(b, endpoint.id, 'succeeded');
      return succeeded.length === 1 ? succeeded[0] : null;
    }, 5_000);
    // The aborted attempt is not one: the delivery's first attempt is b's.
    expect(delivery?.attempts.map((attempt) => attempt.statusCode)).toEqual([204]);
    expect(Date.now() - stopping).toBeLessThan(2_500);
  });

  it('sends a job that a dead instance held from the other instance', async () => {
    const prefix = redis().newPrefix();
    // Locks of 2 × 500 ms: a held job is free again a second after its holder died.
    const settings = settingsWith({ timeoutMs: 500 });
    const a = await harness.open(prefix, settings);
    const b = await harness.open(prefix, settings);
    await a.start();
    const receiver = await harness.receiver();
    let hang = true;
    receiver.answer = () => (hang ? { status: 204, delayMs: 2_000 } : { status: 204 });
    const { endpoint } = await a.createEndpoint({ url: receiver.url }, Date.now());
    const [event] = events(1);
    await a.queues.enqueue(endpoint.id, [event]);
    await eventually(() => receiver.inFlight === 1, 5_000, 'the attempt under way');
    // a dies mid-attempt: its lock is no longer renewed.
    await a.stop({ force: true });
    const died = Date.now();
    hang = false;
    await b.start();
    await eventually(
      () => receiver.ids().includes(event.id),
      10_000,
      'the job sent by the other instance',
    );
    const delivery = await eventually(async () => {
      const succeeded = await allDeliveries(b, endpoint.id, 'succeeded');
      return succeeded.length === 1 ? succeeded[0] : null;
    }, 5_000);
    // Sent once, by b, after a's lock expired: a's attempt never finished, so never logged.
    expect(delivery?.attempts.map((attempt) => attempt.statusCode)).toEqual([204]);
    expect(Date.now() - died).toBeGreaterThanOrEqual(900);
  });
});

describeWithRedisCluster('Webhook deliveries on Redis Cluster (BullMQ)', (cluster) => {
  const harness = useHarness(
    () => connectRedisCluster(clusterNodeList(cluster().seeds) ?? [], 2_000),
    () => cluster().seeds,
  );

  it('delivers and retries with queues on their own slots, across two instances', async () => {
    const prefix = `test:${randomUUID().slice(0, 8)}:`;
    const settings = settingsWith();
    const [a, b] = [await harness.open(prefix, settings), await harness.open(prefix, settings)];
    await Promise.all([a.start(), b.start()]);
    const receiver = await harness.receiver();
    let failures = 0;
    receiver.answer = () => (++failures <= 3 ? { status: 500 } : { status: 204, delayMs: 20 });
    const { endpoint, secret } = await a.createEndpoint({ url: receiver.url }, Date.now());
    const second = await b.createEndpoint({ url: receiver.url }, Date.now());
    await new Promise((resolve) => setTimeout(resolve, 700));
    const sent = events(12);
    await a.queues.enqueue(endpoint.id, sent);
    await b.queues.enqueue(second.endpoint.id, sent.slice(0, 2));
    await eventually(
      () => sent.every((event) => receiver.received.some((r) => r.id === event.id && r)),
      20_000,
      'every event delivered',
    );
    for (const received of receiver.received) {
      const key =
        receiver.verifiedWith(received, secret) || receiver.verifiedWith(received, second.secret);
      expect(key).toBe(true);
    }
    expect(receiver.maxInFlight).toBeLessThanOrEqual(2 * settings.maxInFlight);
    await eventually(
      async () => (await allDeliveries(b, endpoint.id, 'succeeded')).length === sent.length,
      5_000,
    );
    await b.deleteEndpoint(endpoint.id);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const admin = cluster().client();
    try {
      for (const master of admin.nodes('master')) {
        expect(await keysUnder(master, `${prefix}{wh:${endpoint.id}}`)).toEqual([]);
      }
    } finally {
      admin.disconnect();
    }
  });
});
