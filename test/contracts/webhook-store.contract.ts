import { randomUUID } from 'node:crypto';
import { StoreError } from '../../src/common/errors/store-error';
import type { WebhookSettings } from '../../src/config/app.settings';
import type {
  ChangeSink,
  EvictedConversation,
  TappedChange,
} from '../../src/conversations/change-outbox';
import {
  changeEvent,
  OLD_SECRET_OVERLAP_MS,
  type DisabledReason,
} from '../../src/webhooks/webhook.model';
import { HttpWebhookSender } from '../../src/webhooks/http-webhook-sender';
import { WebhookStore } from '../../src/webhooks/webhook.store';
import type { WebhookSender } from '../../src/webhooks/webhook-sender';
import { eventually, Receiver, startReceiver, verifies } from '../utils/recording-receiver';

export interface WebhookStoreHarness {
  /** What the HTTP side calls (a worker's IPC store, or the store itself). */
  store: WebhookStore;
  /** Where the conversation store tells its changes (the store, or the one behind the IPC). */
  sink: ChangeSink;
  /** Stops sending and releases what setup took (connections, keys, processes). */
  teardown(): Promise<void>;
}

/**
 * Makes a started store with these settings; `clock` is the store's time for its attempts,
 * `sender` makes them (an HttpWebhookSender allowing 127.0.0.1, closed by the contract after
 * the harness's teardown).
 */
export type WebhookStoreSetup = (
  settings: WebhookSettings,
  clock: () => number,
  sender: WebhookSender,
) => Promise<WebhookStoreHarness>;

/** Settings as a test wants them: milliseconds where production has hours. */
export function webhookSettings(overrides: Partial<WebhookSettings> = {}): WebhookSettings {
  return {
    maxEndpoints: 20,
    timeoutMs: 2_000,
    retryScheduleMs: [20, 40],
    disableAfterMs: 5 * 24 * 3600_000,
    maxInFlight: 8,
    maxPending: 1_000,
    maxBytes: 16 * 1024 * 1024,
    retentionMs: 72 * 3600_000,
    logLimit: 1_000,
    reconcileMs: 60_000,
    allowPrivateNetworks: true,
    ...overrides,
  } as unknown as WebhookSettings;
}

/** A change as a conversation store taps it. */
export function tapped(
  type: TappedChange['type'],
  seq: number,
  conversationId: string = randomUUID(),
  data = '{"n":1}',
): TappedChange {
  return {
    conversationId,
    life: 12345,
    seq: type === 'conversation.created' ? 0 : seq,
    type,
    data,
    at: Date.now(),
  };
}

/** Waits until the store lists the endpoint disabled for `reason`. */
async function untilDisabled(
  store: WebhookStore,
  endpointId: string,
  reason: DisabledReason,
): Promise<void> {
  await eventually(async () =>
    expect(await store.getEndpoint(endpointId, Date.now())).toMatchObject({
      status: 'disabled',
      disabledReason: reason,
    }),
  );
}

async function rejection(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StoreError);
  return (error as StoreError).code;
}

/**
 * What every implementation of the WebhookStore port (with the ChangeSink the conversation
 * store tells) must do, with real receivers on 127.0.0.1.
 */
export function webhookStoreContract(name: string, setup: WebhookStoreSetup): void {
  describe(`WebhookStore contract: ${name}`, () => {
    let harnesses: WebhookStoreHarness[] = [];
    let senders: WebhookSender[] = [];
    let receivers: Receiver[] = [];
    let offset = 0;
    const clock = () => Date.now() + offset;

    async function open(overrides: Partial<WebhookSettings> = {}): Promise<WebhookStoreHarness> {
      const settings = webhookSettings(overrides);
      const sender = new HttpWebhookSender({
        timeoutMs: settings.timeoutMs,
        allowPrivateNetworks: true,
      });
      senders.push(sender);
      const harness = await setup(settings, clock, sender);
      harnesses.push(harness);
      return harness;
    }

    async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
      const started = await startReceiver(...args);
      receivers.push(started);
      return started;
    }

    afterEach(async () => {
      await Promise.all(harnesses.map((harness) => harness.teardown()));
      senders.forEach((sender) => sender.close());
      await Promise.all(receivers.map((r) => r.close()));
      harnesses = [];
      senders = [];
      receivers = [];
      offset = 0;
    });

    it('creates, lists, reads, updates and deletes endpoints, within the limit', async () => {
      const { store } = await open({ maxEndpoints: 2 });
      const now = Date.now();
      const first = await store.createEndpoint(
        { url: 'http://127.0.0.1:9/a', events: ['message.*'], description: 'crm' },
        now,
      );
      expect(first.secret).toMatch(/^whsec_/);
      expect(first.endpoint).toMatchObject({
        url: 'http://127.0.0.1:9/a',
        events: ['message.*'],
        description: 'crm',
        status: 'enabled',
        disabledReason: null,
        createdAt: now,
        previousSecretsExpireAt: [],
      });
      expect(JSON.stringify(first.endpoint)).not.toContain('whsec_');
      const second = await store.createEndpoint({ url: 'http://127.0.0.1:9/b' }, now + 1);
      expect(second.endpoint.events).toEqual([]);
      expect(await rejection(store.createEndpoint({ url: 'http://127.0.0.1:9/c' }, now))).toBe(
        'webhook_limit_reached',
      );
      expect((await store.listEndpoints(now)).map((e) => e.id)).toEqual([
        first.endpoint.id,
        second.endpoint.id,
      ]);
      expect(await store.getEndpoint(second.endpoint.id, now)).toEqual(second.endpoint);

      const updated = await store.updateEndpoint(
        first.endpoint.id,
        { url: 'http://127.0.0.1:9/z', enabled: false },
        now + 5,
      );
      expect(updated).toMatchObject({
        url: 'http://127.0.0.1:9/z',
        events: ['message.*'],
        status: 'disabled',
        disabledReason: 'manual',
        updatedAt: now + 5,
      });
      expect(
        await store.updateEndpoint(first.endpoint.id, { enabled: true }, now + 6),
      ).toMatchObject({ status: 'enabled', disabledReason: null });

      await store.deleteEndpoint(first.endpoint.id);
      const gone = first.endpoint.id;
      expect(await rejection(store.getEndpoint(gone, now))).toBe('webhook_not_found');
      expect(await rejection(store.updateEndpoint(gone, {}, now))).toBe('webhook_not_found');
      expect(await rejection(store.deleteEndpoint(gone))).toBe('webhook_not_found');
      expect(await rejection(store.rotateSecret(gone, now))).toBe('webhook_not_found');
      expect(await rejection(store.sendTest(gone, now))).toBe('webhook_not_found');
      expect(await rejection(store.deliveries(gone, { limit: 10 }, now))).toBe('webhook_not_found');
      expect(await rejection(store.retryDelivery(gone, 'evt_x', now))).toBe('webhook_not_found');
      expect(await rejection(store.recover(gone, now, now))).toBe('webhook_not_found');
      expect(await rejection(store.retryDelivery(second.endpoint.id, 'evt_x', now))).toBe(
        'webhook_delivery_not_found',
      );
      // Room again for one more.
      await store.createEndpoint({ url: 'http://127.0.0.1:9/c' }, now);
    });

    it('delivers every kind of change once, signed, with the body fixed when queued', async () => {
      const { store, sink } = await open();
      const hook = await receiver();
      const { endpoint, secret } = await store.createEndpoint({ url: hook.url }, Date.now());
      const id = randomUUID();
      const changes = [
        tapped('conversation.created', 0, id),
        tapped('message.created', 1, id),
        tapped('message.deleted', 2, id),
        tapped('conversation.read', 3, id),
        tapped('conversation.updated', 4, id),
      ];
      await sink.changed(changes);
      const evicted: EvictedConversation = {
        conversationId: id,
        life: 12345,
        lastSeq: 4,
        summary: '{"id":"x"}',
        messagesJson: ['{"seq":1}'],
        at: Date.now(),
      };
      expect(sink.wantsTranscripts()).toBe(true);
      await sink.evicted([evicted]);
      const compact = id.replace(/-/g, '');
      const expected = [
        ...changes.map((change) => changeEvent(change).id),
        `evt_${compact}_12345_transcript_1`,
        `evt_${compact}_12345_evicted`,
      ];
      await eventually(() => expect(hook.received).toHaveLength(expected.length));
      expect(hook.ids().sort()).toEqual([...expected].sort());
      for (const request of hook.received) {
        expect(verifies(secret, request)).toBe(true);
      }
      for (const change of changes) {
        const event = changeEvent(change);
        expect(hook.received.find((r) => r.id === event.id)?.body).toBe(event.body);
      }
      const types = hook.received.map((r) => (JSON.parse(r.body) as { type: string }).type);
      expect(types.sort()).toEqual(
        [
          'conversation.created',
          'conversation.evicted',
          'conversation.read',
          'conversation.transcript',
          'conversation.updated',
          'message.created',
          'message.deleted',
        ].sort(),
      );
      await eventually(async () => {
        const page = await store.deliveries(endpoint.id, { limit: 50 }, Date.now());
        expect(page.deliveries.map((d) => d.status)).toEqual(expected.map(() => 'succeeded'));
      });
      // Nothing more comes.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(hook.received).toHaveLength(expected.length);
    });

    it('queues for each endpoint only the types its filter takes', async () => {
      const { store, sink } = await open();
      const messages = await receiver();
      const created = await receiver();
      const disabled = await receiver();
      const now = Date.now();
      await store.createEndpoint({ url: messages.url, events: ['message.*'] }, now);
      await store.createEndpoint({ url: created.url, events: ['conversation.created'] }, now);
      const off = await store.createEndpoint({ url: disabled.url }, now);
      await store.updateEndpoint(off.endpoint.id, { enabled: false }, now);
      expect(sink.wantsTranscripts()).toBe(false);
      const id = randomUUID();
      await sink.changed([
        tapped('conversation.created', 0, id),
        tapped('message.created', 1, id),
        tapped('conversation.read', 2, id),
        tapped('message.deleted', 3, id),
      ]);
      await sink.evicted([
        {
          conversationId: id,
          life: 12345,
          lastSeq: 3,
          summary: '{}',
          messagesJson: ['{}'],
          at: now,
        },
      ]);
      await eventually(() => {
        expect(messages.received).toHaveLength(2);
        expect(created.received).toHaveLength(1);
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(messages.received.map((r) => JSON.parse(r.body).type).sort()).toEqual([
        'message.created',
        'message.deleted',
      ]);
      expect(JSON.parse(created.received[0].body).type).toBe('conversation.created');
      expect(disabled.received).toHaveLength(0);
      expect(
        (await store.deliveries(off.endpoint.id, { limit: 10 }, Date.now())).deliveries,
      ).toEqual([]);
    });

    it('retries a 500 on the schedule under the same id, then logs the delivery failed', async () => {
      const { store, sink } = await open({ retryScheduleMs: [20, 40] });
      const hook = await receiver(() => ({ status: 500 }));
      const { endpoint } = await store.createEndpoint({ url: hook.url }, Date.now());
      const change = tapped('message.created', 1);
      await sink.changed([change]);
      await eventually(async () => {
        const page = await store.deliveries(endpoint.id, { limit: 10 }, Date.now());
        expect(page.deliveries[0]?.status).toBe('failed');
      });
      expect(hook.ids()).toEqual([
        changeEvent(change).id,
        changeEvent(change).id,
        changeEvent(change).id,
      ]);
      const gaps = [
        hook.received[1].at - hook.received[0].at,
        hook.received[2].at - hook.received[1].at,
      ];
      expect(gaps[0]).toBeGreaterThanOrEqual(14);
      expect(gaps[1]).toBeGreaterThanOrEqual(30);
      const [delivery] = (await store.deliveries(endpoint.id, { limit: 10 }, Date.now()))
        .deliveries;
      expect(delivery).toMatchObject({
        id: changeEvent(change).id,
        type: 'message.created',
        nextAttemptAt: null,
      });
      expect(delivery.attempts.map((a) => [a.statusCode, a.error])).toEqual([
        [500, 'status 500'],
        [500, 'status 500'],
        [500, 'status 500'],
      ]);
      const view = await store.getEndpoint(endpoint.id, Date.now());
      expect(view.status).toBe('enabled');
      expect(view.failingSince).toBeGreaterThan(0);
      expect(view.lastSuccessAt).toBeNull();
    });

    it('disables an endpoint that answers 410, and queues nothing for it after', async () => {
      const { store, sink } = await open();
      const hook = await receiver(() => ({ status: 410 }));
      const { endpoint } = await store.createEndpoint({ url: hook.url }, Date.now());
      await sink.changed([tapped('message.created', 1)]);
      await untilDisabled(store, endpoint.id, 'gone');
      await sink.changed([tapped('message.created', 2)]);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(hook.received).toHaveLength(1);
      const page = await store.deliveries(endpoint.id, { limit: 10 }, Date.now());
      expect(page.deliveries.map((d) => [d.status, d.attempts.length])).toEqual([['failed', 1]]);
    });

    it("honours a 429's Retry-After", async () => {
      const { store, sink } = await open({ retryScheduleMs: [10] });
      const hook = await receiver((_, i) =>
        i === 0 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 },
      );
      await store.createEndpoint({ url: hook.url }, Date.now());
      await sink.changed([tapped('message.created', 1)]);
      await eventually(() => expect(hook.received).toHaveLength(2), 3_000);
      expect(hook.received[1].at - hook.received[0].at).toBeGreaterThanOrEqual(950);
    });

    it('keeps at most WEBHOOK_MAX_IN_FLIGHT attempts out per endpoint', async () => {
      const { store, sink } = await open({ maxInFlight: 2 });
      const hook = await receiver(() => ({ status: 200, delayMs: 30 }));
      await store.createEndpoint({ url: hook.url }, Date.now());
      const id = randomUUID();
      await sink.changed(Array.from({ length: 8 }, (_, i) => tapped('message.created', i + 1, id)));
      await eventually(() => expect(hook.received).toHaveLength(8));
      expect(hook.maxConcurrent).toBe(2);
    });

    it('does not let a slow endpoint delay another', async () => {
      const { store, sink } = await open({ maxInFlight: 2, timeoutMs: 1_500 });
      const slow = await receiver(() => ({ status: 200, delayMs: 1_000 }));
      const fast = await receiver();
      await store.createEndpoint({ url: slow.url }, Date.now());
      await store.createEndpoint({ url: fast.url }, Date.now());
      const id = randomUUID();
      const started = Date.now();
      await sink.changed(Array.from({ length: 6 }, (_, i) => tapped('message.created', i + 1, id)));
      await eventually(() => expect(fast.received).toHaveLength(6));
      // Well before the slow receiver answers its first two.
      expect(Date.now() - started).toBeLessThan(800);
      expect(slow.received.length).toBeLessThanOrEqual(2);
    });

    it('disables an endpoint at its backlog cap (backlog), without queueing past it', async () => {
      const { store, sink } = await open({ maxPending: 3, maxInFlight: 1 });
      const hook = await receiver(() => ({ status: 200, delayMs: 300 }));
      const { endpoint } = await store.createEndpoint({ url: hook.url }, Date.now());
      const id = randomUUID();
      await sink.changed(Array.from({ length: 5 }, (_, i) => tapped('message.created', i + 1, id)));
      // The fan-out may come after the sink's write (Redis): the disable follows it.
      await untilDisabled(store, endpoint.id, 'backlog');
      const page = await store.deliveries(endpoint.id, { limit: 10 }, Date.now());
      expect(page.deliveries).toHaveLength(3);
    });

    it('keeps sending what an endpoint disabled for its backlog holds', async () => {
      const { store, sink } = await open({ maxPending: 3, maxInFlight: 1 });
      const hook = await receiver(() => ({ status: 200, delayMs: 100 }));
      const { endpoint } = await store.createEndpoint({ url: hook.url }, Date.now());
      const id = randomUUID();
      const changes = Array.from({ length: 5 }, (_, i) => tapped('message.created', i + 1, id));
      await sink.changed(changes);
      await untilDisabled(store, endpoint.id, 'backlog');
      await eventually(async () => {
        const page = await store.deliveries(endpoint.id, { limit: 10 }, Date.now());
        expect(page.deliveries.map((delivery) => delivery.status)).toEqual([
          'succeeded',
          'succeeded',
          'succeeded',
        ]);
      }, 5_000);
      expect(new Set(hook.ids())).toEqual(
        new Set(changes.slice(0, 3).map((change) => changeEvent(change).id)),
      );
      expect(await store.getEndpoint(endpoint.id, Date.now())).toMatchObject({
        disabledReason: 'backlog',
      });
    });

    it('stops what a backlog holds once the receiver answers 410 or a PATCH disables', async () => {
      const { store, sink } = await open({ maxPending: 3, maxInFlight: 1 });
      const gone = await receiver(() => ({ status: 410 }));
      const held = await receiver(() => ({ status: 200, delayMs: 3_000 }));
      const first = await store.createEndpoint({ url: gone.url }, Date.now());
      const second = await store.createEndpoint({ url: held.url }, Date.now());
      const id = randomUUID();
      await sink.changed(Array.from({ length: 5 }, (_, i) => tapped('message.created', i + 1, id)));
      const reasonOf = async (endpointId: string) =>
        (await store.getEndpoint(endpointId, Date.now())).disabledReason;
      await eventually(async () => expect(await reasonOf(first.endpoint.id)).toBe('gone'));
      await eventually(async () => expect(await reasonOf(second.endpoint.id)).toBe('backlog'));
      await store.updateEndpoint(second.endpoint.id, { enabled: false }, Date.now());
      expect(await reasonOf(second.endpoint.id)).toBe('manual');
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      // One 410, and nothing after it; the held attempt stopped, and nothing after it either.
      expect(gone.received).toHaveLength(1);
      expect(held.received).toHaveLength(1);
      const statuses = async (endpointId: string) =>
        (await store.deliveries(endpointId, { limit: 10 }, Date.now())).deliveries
          .map((delivery) => delivery.status)
          .sort();
      // (On Redis the fan-out may queue the first change alone, and its 410 come before the rest
      // is queued: then there is nothing more to keep.)
      const [failed, ...kept] = await statuses(first.endpoint.id);
      expect(failed).toBe('failed');
      expect(kept.every((status) => status === 'pending')).toBe(true);
      expect(await statuses(second.endpoint.id)).toEqual(['pending', 'pending', 'pending']);
    });

    it('disables an endpoint past its byte cap (backlog)', async () => {
      const { store, sink } = await open({ maxBytes: 1_000 });
      const { endpoint } = await store.createEndpoint({ url: 'http://127.0.0.1:9/x' }, Date.now());
      await store.updateEndpoint(endpoint.id, { enabled: false }, Date.now());
      await store.updateEndpoint(endpoint.id, { enabled: true }, Date.now());
      await sink.changed([tapped('message.created', 1, randomUUID(), `"${'x'.repeat(1_200)}"`)]);
      await untilDisabled(store, endpoint.id, 'backlog');
    });

    it('at the byte cap, disables the endpoint that is behind, not one beside it', async () => {
      // Each body is about 560 bytes: the failing endpoint's backlog reaches the cap at its 6th.
      const { store, sink } = await open({ maxBytes: 3_000, retryScheduleMs: [60_000] });
      const failing = await receiver(() => ({ status: 500 }));
      const healthy = await receiver();
      const behind = await store.createEndpoint({ url: failing.url }, Date.now());
      const beside = await store.createEndpoint({ url: healthy.url }, Date.now());
      const id = randomUUID();
      const data = `"${'x'.repeat(400)}"`;
      for (let seq = 1; seq <= 12; seq++) {
        await sink.changed([tapped('message.created', seq, id, data)]);
        // Delivered and no longer counted: on Redis a finished delivery is uncounted just after
        // (released in batches), and until then it counts toward the cap too.
        await eventually(async () => {
          expect(healthy.received).toHaveLength(seq);
          expect((await store.pendingCounts())[beside.endpoint.id] ?? 0).toBe(0);
        });
      }
      expect(await store.getEndpoint(behind.endpoint.id, Date.now())).toMatchObject({
        status: 'disabled',
        disabledReason: 'backlog',
      });
      expect(await store.getEndpoint(beside.endpoint.id, Date.now())).toMatchObject({
        status: 'enabled',
        disabledReason: null,
      });
      // The disabled one keeps what it had queued, to send once enabled again.
      const kept = await store.deliveries(behind.endpoint.id, { limit: 20 }, Date.now());
      expect(kept.deliveries.length).toBeGreaterThanOrEqual(4);
      expect(kept.deliveries.length).toBeLessThan(12);
      expect(kept.deliveries.every((delivery) => delivery.status === 'pending')).toBe(true);
    });

    it('disables an endpoint with no success for WEBHOOK_DISABLE_AFTER_MS (failing)', async () => {
      const { store, sink } = await open({ retryScheduleMs: [20, 20], disableAfterMs: 30 });
      const hook = await receiver(() => ({ status: 500 }));
      const { endpoint } = await store.createEndpoint({ url: hook.url }, Date.now());
      await sink.changed([tapped('message.created', 1)]);
      await untilDisabled(store, endpoint.id, 'failing');
      expect(hook.received).toHaveLength(3);
    });

    it('stops the attempts in flight when it disables an endpoint, sent once enabled', async () => {
      const { store, sink } = await open({ maxInFlight: 2, timeoutMs: 5_000 });
      // The first request is answered 410 Gone while the second is still out: the second's
      // answer, 3 s later, must not count, and nothing more may be sent.
      const hook = await receiver((_, i) =>
        i === 0 ? { status: 410, delayMs: 100 } : { status: 200, delayMs: 3_000 },
      );
      const { endpoint } = await store.createEndpoint({ url: hook.url }, Date.now());
      const id = randomUUID();
      const changes = Array.from({ length: 4 }, (_, i) => tapped('message.created', i + 1, id));
      await sink.changed(changes);
      await untilDisabled(store, endpoint.id, 'gone');
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      expect(hook.received).toHaveLength(2);
      const page = await store.deliveries(endpoint.id, { limit: 10 }, Date.now());
      const statusOf = new Map(page.deliveries.map((d) => [d.id, d.status]));
      const ids = changes.map((change) => changeEvent(change).id);
      const [gone, ...rest] = hook.ids();
      expect(statusOf.get(gone)).toBe('failed');
      expect(
        ids.filter((eventId) => eventId !== gone).map((eventId) => statusOf.get(eventId)),
      ).toEqual(['pending', 'pending', 'pending']);
      hook.answer(() => ({ status: 200 }));
      await store.updateEndpoint(endpoint.id, { enabled: true }, Date.now());
      await eventually(
        () =>
          expect(new Set(hook.ids().slice(2))).toEqual(
            new Set(ids.filter((eventId) => eventId !== gone)),
          ),
        5_000,
      );
      expect(hook.ids().slice(2)).toContain(rest[0]);
    });

    it('re-sends what waited while disabled once enabled again', async () => {
      const { store, sink } = await open({ retryScheduleMs: [30] });
      const hook = await receiver((_, i) => (i === 0 ? { status: 500 } : { status: 200 }));
      const { endpoint } = await store.createEndpoint({ url: hook.url }, Date.now());
      const change = tapped('message.created', 1);
      await sink.changed([change]);
      await eventually(() => expect(hook.received).toHaveLength(1));
      await store.updateEndpoint(endpoint.id, { enabled: false }, Date.now());
      await new Promise((resolve) => setTimeout(resolve, 80));
      expect(hook.received).toHaveLength(1);
      await store.updateEndpoint(endpoint.id, { enabled: true }, Date.now());
      await eventually(() =>
        expect(hook.ids()).toEqual([changeEvent(change).id, changeEvent(change).id]),
      );
    });

    it('sends a delivery waiting for its next attempt at once when retried', async () => {
      const { store, sink } = await open({ retryScheduleMs: [60_000] });
      const hook = await receiver((_, i) => (i === 0 ? { status: 500 } : { status: 200 }));
      const { endpoint } = await store.createEndpoint({ url: hook.url }, Date.now());
      const change = tapped('message.created', 1);
      const id = changeEvent(change).id;
      await sink.changed([change]);
      const deliveries = async () =>
        (await store.deliveries(endpoint.id, { limit: 10 }, Date.now())).deliveries.map(
          (delivery) => [delivery.id, delivery.status, delivery.attempts.length],
        );
      await eventually(async () => expect(await deliveries()).toEqual([[id, 'pending', 1]]));
      // The log may show the failed attempt a moment before the job waits for its next one
      // (on Redis it is still active then, and a retry leaves an active job as it is).
      await eventually(async () => {
        if (hook.received.length < 2) {
          await store.retryDelivery(endpoint.id, id, Date.now());
        }
        expect(hook.ids()).toEqual([id, id]);
      }, 3_000);
      await eventually(async () => expect(await deliveries()).toEqual([[id, 'succeeded', 2]]));
    });

    it('signs with the old secret beside the new one until the old expires', async () => {
      const { store, sink } = await open();
      const hook = await receiver();
      const created = await store.createEndpoint({ url: hook.url }, Date.now());
      const rotatedAt = clock();
      const rotated = await store.rotateSecret(created.endpoint.id, rotatedAt);
      expect(rotated.secret).not.toBe(created.secret);
      expect(rotated.previousSecretExpiresAt).toBe(rotatedAt + OLD_SECRET_OVERLAP_MS);
      expect(
        (await store.getEndpoint(created.endpoint.id, clock())).previousSecretsExpireAt,
      ).toEqual([rotated.previousSecretExpiresAt]);
      await sink.changed([tapped('message.created', 1)]);
      await eventually(() => expect(hook.received).toHaveLength(1));
      expect(verifies(created.secret, hook.received[0])).toBe(true);
      expect(verifies(rotated.secret, hook.received[0])).toBe(true);
      expect(verifies('whsec_' + Buffer.alloc(32, 1).toString('base64'), hook.received[0])).toBe(
        false,
      );

      offset = OLD_SECRET_OVERLAP_MS + 1_000;
      await sink.changed([{ ...tapped('message.created', 2), at: clock() }]);
      await eventually(() => expect(hook.received).toHaveLength(2));
      expect(verifies(rotated.secret, hook.received[1])).toBe(true);
      expect(verifies(created.secret, hook.received[1])).toBe(false);
      expect(
        (await store.getEndpoint(created.endpoint.id, clock())).previousSecretsExpireAt,
      ).toEqual([]);
    });

    it('refuses a sixth rotation while five old secrets still sign', async () => {
      const { store } = await open();
      const { endpoint } = await store.createEndpoint({ url: 'http://127.0.0.1:9/x' }, Date.now());
      const now = Date.now();
      for (let i = 0; i < 5; i++) {
        await store.rotateSecret(endpoint.id, now + i);
      }
      expect(await rejection(store.rotateSecret(endpoint.id, now + 5))).toBe(
        'rotation_limit_reached',
      );
      await store.rotateSecret(endpoint.id, now + OLD_SECRET_OVERLAP_MS + 1);
    });

    it('shows the log newest first in pages, by status, and retries, recovers and tests', async () => {
      const { store, sink } = await open({ retryScheduleMs: [] });
      let failing = true;
      const hook = await receiver(() => ({ status: failing ? 500 : 200 }));
      const { endpoint } = await store.createEndpoint({ url: hook.url }, Date.now());
      const id = randomUUID();
      const changes = [1, 2, 3].map((seq) => ({
        ...tapped('message.created', seq, id),
        at: 1_000 + seq,
      }));
      await sink.changed(changes);
      const ids = changes.map((change) => changeEvent(change).id);
      await eventually(async () => {
        const page = await store.deliveries(
          endpoint.id,
          { status: 'failed', limit: 10 },
          Date.now(),
        );
        expect(page.deliveries).toHaveLength(3);
      });
      const first = await store.deliveries(endpoint.id, { limit: 2 }, Date.now());
      expect(first.deliveries.map((d) => d.id)).toEqual([ids[2], ids[1]]);
      expect(first.nextCursor).toEqual(expect.any(String));
      const second = await store.deliveries(
        endpoint.id,
        { limit: 2, cursor: first.nextCursor as string },
        Date.now(),
      );
      expect(second.deliveries.map((d) => d.id)).toEqual([ids[0]]);
      expect(second.nextCursor).toBeNull();
      expect(
        (await store.deliveries(endpoint.id, { status: 'succeeded', limit: 10 }, Date.now()))
          .deliveries,
      ).toEqual([]);

      failing = false;
      await store.retryDelivery(endpoint.id, ids[0], Date.now());
      await eventually(async () => {
        const page = await store.deliveries(
          endpoint.id,
          { status: 'succeeded', limit: 10 },
          Date.now(),
        );
        expect(page.deliveries.map((d) => [d.id, d.attempts.length])).toEqual([[ids[0], 2]]);
      });
      expect(await store.recover(endpoint.id, 1_003, Date.now())).toEqual({ requeued: 1 });
      await eventually(() => expect(hook.ids().filter((x) => x === ids[2])).toHaveLength(2));
      expect(hook.ids().filter((x) => x === ids[1])).toHaveLength(1);
      expect(await store.recover(endpoint.id, 0, Date.now())).toEqual({ requeued: 1 });
      await eventually(() => expect(hook.ids().filter((x) => x === ids[1])).toHaveLength(2));

      const { deliveryId } = await store.sendTest(endpoint.id, Date.now());
      expect(deliveryId).toMatch(/^evt_test_/);
      await eventually(() => expect(hook.ids()).toContain(deliveryId));
      const test = hook.received.find((r) => r.id === deliveryId);
      expect(JSON.parse(test?.body ?? '{}')).toMatchObject({
        type: 'webhook.test',
        data: { endpointId: endpoint.id },
      });
      await eventually(async () => {
        const page = await store.deliveries(
          endpoint.id,
          { status: 'succeeded', limit: 10 },
          Date.now(),
        );
        expect(page.deliveries).toHaveLength(4);
      });
      const view = await store.getEndpoint(endpoint.id, Date.now());
      expect(view.lastSuccessAt).toBeGreaterThan(0);
      expect(view.failingSince).toBeNull();
    });

    it('keeps WEBHOOK_LOG_LIMIT finished deliveries, and none past WEBHOOK_RETENTION_MS', async () => {
      const { store, sink } = await open({ logLimit: 2, retentionMs: 60_000 });
      const hook = await receiver();
      const { endpoint } = await store.createEndpoint({ url: hook.url }, Date.now());
      const id = randomUUID();
      const changes = [1, 2, 3].map((seq) => ({
        ...tapped('message.created', seq, id),
        at: 1_000 + seq,
      }));
      for (const change of changes) {
        await sink.changed([change]);
        await eventually(() => expect(hook.ids()).toContain(changeEvent(change).id));
      }
      await eventually(async () => {
        const page = await store.deliveries(endpoint.id, { limit: 10 }, Date.now());
        expect(page.deliveries.map((d) => d.id)).toEqual(
          [changes[2], changes[1]].map((change) => changeEvent(change).id),
        );
      });
      const later = await store.deliveries(endpoint.id, { limit: 10 }, Date.now() + 61_000);
      expect(later.deliveries).toEqual([]);
    });

    it('keeps WEBHOOK_LOG_LIMIT failed deliveries beside as many succeeded ones', async () => {
      const { store, sink } = await open({ logLimit: 2, retryScheduleMs: [] });
      let failing = true;
      const hook = await receiver(() => ({ status: failing ? 500 : 200 }));
      const { endpoint } = await store.createEndpoint({ url: hook.url }, Date.now());
      const id = randomUUID();
      const changes = [1, 2, 3, 4, 5].map((seq) => tapped('message.created', seq, id));
      const ids = changes.map((change) => changeEvent(change).id);
      const logged = async (status: 'succeeded' | 'failed') =>
        (await store.deliveries(endpoint.id, { status, limit: 10 }, Date.now())).deliveries
          .map((delivery) => delivery.id)
          .sort();
      await sink.changed(changes.slice(0, 2));
      await eventually(async () => expect(await logged('failed')).toEqual(ids.slice(0, 2).sort()));
      // Three successes after them: the two failures stay, for recover to send.
      failing = false;
      for (const change of changes.slice(2)) {
        await sink.changed([change]);
        await eventually(() => expect(hook.ids()).toContain(changeEvent(change).id));
      }
      await eventually(async () => expect(await logged('succeeded')).toEqual(ids.slice(3).sort()));
      expect(await logged('failed')).toEqual(ids.slice(0, 2).sort());
      expect(await store.recover(endpoint.id, 0, Date.now())).toEqual({ requeued: 2 });
      await eventually(() => expect(hook.ids()).toHaveLength(7));
    });

    it('drops the queue and log of a deleted endpoint', async () => {
      const { store, sink } = await open({ maxInFlight: 1 });
      const hook = await receiver(() => ({ status: 200, delayMs: 100 }));
      const { endpoint } = await store.createEndpoint({ url: hook.url }, Date.now());
      const id = randomUUID();
      await sink.changed([1, 2, 3].map((seq) => tapped('message.created', seq, id)));
      await eventually(() => expect(hook.received).toHaveLength(1));
      await store.deleteEndpoint(endpoint.id);
      await new Promise((resolve) => setTimeout(resolve, 250));
      expect(hook.received).toHaveLength(1);
      expect(await rejection(store.deliveries(endpoint.id, { limit: 10 }, Date.now()))).toBe(
        'webhook_not_found',
      );
      // The deleted endpoint's bytes and deliveries are no one's backlog.
      const again = await store.createEndpoint({ url: hook.url }, Date.now());
      await sink.changed([tapped('message.created', 4, id)]);
      await eventually(() => expect(hook.received).toHaveLength(2));
      expect(await store.getEndpoint(again.endpoint.id, Date.now())).toMatchObject({
        status: 'enabled',
      });
    });
  });
}
