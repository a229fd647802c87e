import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreHub } from '../src/cluster/store-hub';
import type { SnapshotSettings } from '../src/config/app.settings';
import {
  ChangeOutbox,
  ChangeSink,
  EvictedConversation,
  TappedChange,
} from '../src/conversations/change-outbox';
import { SnapshotService } from '../src/snapshot/snapshot.service';
import { changeEvent } from '../src/webhooks/webhook.model';
import { eventually, Receiver, startReceiver, verifies } from './utils/recording-receiver';
import { InMemoryConversationRepository } from '../src/conversations/repositories/memory/in-memory-conversation.repository';
import { IpcConversationRepository } from '../src/conversations/repositories/ipc/ipc-conversation.repository';
import type { AttemptOutcome } from '../src/webhooks/delivery-policy';
import { HttpWebhookSender } from '../src/webhooks/http-webhook-sender';
import { WebhookSender } from '../src/webhooks/webhook-sender';
import { ThreadedWebhookSender } from '../src/webhooks/thread/threaded-webhook-sender';
import { IpcWebhookStore } from '../src/webhooks/ipc/ipc-webhook.store';
import { InMemoryWebhookStore } from '../src/webhooks/memory/in-memory-webhook.store';
import { loopback } from './utils/loopback';
import { tapped, webhookSettings, webhookStoreContract } from './contracts/webhook-store.contract';

webhookStoreContract('in memory', async (settings, clock, sender) => {
  const store = new InMemoryWebhookStore(settings, sender, undefined, clock);
  store.start();
  return {
    store,
    sink: store,
    teardown: () => store.stop(),
  };
});

webhookStoreContract('IPC to the primary', async (settings, clock, sender) => {
  const primary = new InMemoryWebhookStore(settings, sender, undefined, clock);
  primary.start();
  // As in a worker: the webhook store shares the conversation store's channel.
  const worker = new IpcConversationRepository(
    loopback(new StoreHub(new InMemoryConversationRepository(), undefined, primary)),
    2_000,
  );
  return {
    store: new IpcWebhookStore(worker.channel),
    sink: primary,
    teardown: async () => {
      worker.close();
      await primary.stop();
    },
  };
});

describe('the in-memory webhooks where the conversations live', () => {
  const settings = webhookSettings({ retryScheduleMs: [20, 40], timeoutMs: 5_000 });
  let cleanup: (() => Promise<void> | void)[] = [];

  afterEach(async () => {
    for (const step of cleanup.reverse()) {
      await step();
    }
    cleanup = [];
  });

  async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
    const started = await startReceiver(...args);
    cleanup.push(() => started.close());
    return started;
  }

  function webhooks(): InMemoryWebhookStore {
    const sender = new HttpWebhookSender({ timeoutMs: 5_000, allowPrivateNetworks: true });
    const store = new InMemoryWebhookStore(settings, sender);
    cleanup.push(async () => {
      await store.stop();
      sender.close();
    });
    return store;
  }

  /** A conversation store whose outbox tells `sink`. */
  function conversations(sink?: ChangeSink): InMemoryConversationRepository {
    const outbox = new ChangeOutbox();
    if (sink) {
      outbox.attach(sink);
    }
    return new InMemoryConversationRepository(undefined, undefined, undefined, outbox);
  }

  const message = (content: string, sender: 'customer' | 'agent' = 'customer') => ({
    id: randomUUID(),
    sender,
    content,
    timestamp: Date.now(),
    now: Date.now(),
    maxMessages: 100,
  });

  it('is told every change in the step of the write, a customer token never', async () => {
    const told: TappedChange[] = [];
    const evictions: EvictedConversation[] = [];
    let transcripts = true;
    const repository = conversations({
      changed: (changes) => void told.push(...changes),
      evicted: (list) => void evictions.push(...list),
      wantsTranscripts: () => transcripts,
    });
    const id = randomUUID();
    const created = repository.createConversation({
      id,
      now: 1_000,
      maxConversations: 10,
      customerToken: { hash: 'the-token-hash', anonymous: false },
    });
    // Told before the write's promise is even awaited.
    expect(told.map((c) => [c.type, c.seq])).toEqual([['conversation.created', 0]]);
    await created;
    const first = message('hello');
    await repository.appendMessage(id, first);
    await repository.appendMessage(id, message('hi', 'agent'));
    await repository.deleteMessage(id, first.id, Date.now());
    await repository.markRead(id, { sender: 'customer', seq: 2, now: Date.now() });
    await repository.updateState(id, { patch: { status: 'resolved' }, now: Date.now() });
    expect(told.map((c) => [c.type, c.seq])).toEqual([
      ['conversation.created', 0],
      ['message.created', 1],
      ['message.created', 2],
      ['message.deleted', 3],
      ['conversation.read', 4],
      ['conversation.updated', 5],
    ]);
    const life = told[0].life;
    expect(told.every((c) => c.conversationId === id && c.life === life)).toBe(true);
    expect(told[0].data).not.toContain('the-token-hash');
    expect(JSON.parse(told[0].data)).toMatchObject({
      id,
      conversationId: id,
      messageCount: 0,
      status: 'open',
    });
    expect(JSON.parse(told[1].data)).toMatchObject({ id: first.id, content: 'hello', seq: 1 });
    expect(JSON.parse(told[3].data)).toEqual({ messageId: first.id, seq: 3 });
    expect(JSON.parse(told[5].data)).toMatchObject({ seq: 5, status: 'resolved' });

    await repository.evictInactive(Date.now() + 1);
    expect(evictions).toHaveLength(1);
    expect(evictions[0]).toMatchObject({ conversationId: id, life, lastSeq: 5 });
    expect(evictions[0].summary).not.toContain('the-token-hash');
    expect(JSON.parse(evictions[0].summary)).toMatchObject({
      messageCount: 1,
      status: 'resolved',
    });
    expect(evictions[0].messagesJson.map((m) => JSON.parse(m).content)).toEqual(['hi']);

    transcripts = false;
    const other = randomUUID();
    await repository.createConversation({ id: other, now: 1_000, maxConversations: 10 });
    await repository.appendMessage(other, message('x'));
    await repository.evictInactive(Date.now() + 1);
    expect(evictions[1]).toMatchObject({ conversationId: other, messagesJson: [] });

    // A snapshot's restore is no change.
    const count = told.length;
    const restored = conversations({
      changed: (changes) => void told.push(...changes),
      evicted: () => undefined,
      wantsTranscripts: () => true,
    });
    await repository.createConversation({ id: randomUUID(), now: 1_000, maxConversations: 10 });
    for (const line of repository.snapshotLines()) {
      restored.restore(line);
    }
    expect(told.length).toBe(count + 1);
  });

  it('sends a post to an endpoint as the conversation store taps it', async () => {
    const store = webhooks();
    store.start();
    const repository = conversations(store);
    const hook = await receiver();
    const { secret } = await store.createEndpoint(
      { url: hook.url, events: ['message.created'] },
      Date.now(),
    );
    const { id } = await repository.createConversation({
      id: randomUUID(),
      now: Date.now(),
      maxConversations: 10,
    });
    const posted = await repository.appendMessage(id, message('to the CRM'));
    await eventually(() => expect(hook.received).toHaveLength(1));
    const body = JSON.parse(hook.received[0].body);
    expect(body).toMatchObject({ type: 'message.created', data: { conversationId: id, seq: 1 } });
    expect(body.data.change).toEqual(JSON.parse(posted.json));
    expect(verifies(secret, hook.received[0])).toBe(true);
  });

  it('tells its observer of every attempt and every disable', async () => {
    const seen: string[] = [];
    const sender = new HttpWebhookSender({ timeoutMs: 5_000, allowPrivateNetworks: true });
    const store = new InMemoryWebhookStore(
      webhookSettings({ retryScheduleMs: [10], maxPending: 1 }),
      sender,
      {
        attempted: (id, outcome, step) => void seen.push(`${id}:${outcome.statusCode}:${step}`),
        disabled: (id, reason) => void seen.push(`${id}:disabled:${reason}`),
        lost: () => undefined,
      },
    );
    cleanup.push(async () => {
      await store.stop();
      sender.close();
    });
    store.start();
    const gone = await receiver((_, i) => ({ status: i === 0 ? 500 : 410 }));
    // Disabled at its cap before anything is sent: its one pending delivery is still sent.
    const full = await receiver();
    const a = (
      await store.createEndpoint({ url: gone.url, events: ['message.created'] }, Date.now())
    ).endpoint.id;
    const b = (await store.createEndpoint({ url: full.url }, Date.now())).endpoint.id;
    store.changed([tapped('message.created', 1)]);
    store.changed([tapped('message.deleted', 2)]);
    const of = (id: string) => seen.filter((line) => line.startsWith(`${id}:`));
    await eventually(() => {
      expect(of(a)).toEqual([`${a}:500:retry`, `${a}:410:gone`, `${a}:disabled:gone`]);
      expect(of(b)).toEqual([`${b}:disabled:backlog`, `${b}:200:succeeded`]);
    }, 3_000);
    expect(seen[0]).toBe(`${b}:disabled:backlog`);
    expect(full.received).toHaveLength(1);
  });

  /**
   * Started, with the single process's sender, one attempt on the wire per endpoint. Before an
   * attempt is timed the store hands it 16 x WEBHOOK_MAX_IN_FLIGHT at once, more than the
   * receiver holds on the wire. (Its thread compiles its TypeScript first.)
   */
  function threadedWebhooks(): InMemoryWebhookStore {
    const sender = new ThreadedWebhookSender({
      timeoutMs: 5_000,
      allowPrivateNetworks: true,
      maxInFlight: 1,
    });
    const store = new InMemoryWebhookStore(webhookSettings({ maxInFlight: 1 }), sender);
    cleanup.push(async () => {
      await store.stop();
      sender.close();
    });
    store.start();
    return store;
  }

  it('stops the attempts handed to the sender thread when it disables an endpoint', async () => {
    const store = threadedWebhooks();
    const gone = await receiver(() => ({ status: 410, delayMs: 100 }));
    const { endpoint } = await store.createEndpoint({ url: gone.url }, Date.now());
    const id = randomUUID();
    store.changed(Array.from({ length: 6 }, (_, i) => tapped('message.created', i + 1, id)));
    await eventually(async () =>
      expect((await store.getEndpoint(endpoint.id, Date.now())).disabledReason).toBe('gone'),
    );
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    // The thread may start the next one in the instant before the store hears of the 410
    // (outcomes cross back in batches): at most WEBHOOK_MAX_IN_FLIGHT more, and no answer to
    // it counts. Without the stop it would send all six.
    expect(gone.received.length).toBeLessThanOrEqual(2);
    const page = await store.deliveries(endpoint.id, { limit: 10 }, Date.now());
    expect(page.deliveries.map((delivery) => delivery.status).sort()).toEqual([
      'failed',
      ...Array<string>(5).fill('pending'),
    ]);
  }, 30_000);

  it('hands a queueing sender many small attempts ahead, but only about a MiB of large ones', async () => {
    // A sender that queues (as the thread does) and answers nothing until told.
    class HoldingSender extends WebhookSender {
      readonly held: (() => void)[] = [];
      send(): Promise<AttemptOutcome> {
        return new Promise((resolve) =>
          this.held.push(() => resolve({ ok: true, statusCode: 204, durationMs: 1, error: null })),
        );
      }
      override handOverLimit(): number {
        return 1_000;
      }
      close(): void {}
    }
    const handedFor = async (data: string) => {
      const sender = new HoldingSender();
      const store = new InMemoryWebhookStore(webhookSettings({ maxInFlight: 2 }), sender);
      store.start();
      await store.createEndpoint({ url: 'http://127.0.0.1:9/hook' }, Date.now());
      const id = randomUUID();
      store.changed(
        Array.from({ length: 12 }, (_, i) => tapped('message.created', i + 1, id, data)),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      const handed = sender.held.length;
      sender.held.splice(0).forEach((answer) => answer());
      await store.stop();
      return handed;
    };
    expect(await handedFor('{"n":1}')).toBe(12);
    // 300 KB bodies: the cap's two, then more only while under 1 MiB.
    expect(await handedFor(JSON.stringify({ text: 'x'.repeat(300_000) }))).toBe(4);
  });

  it('sends what waits in the sender thread as the endpoint is after a PATCH or a rotation', async () => {
    // The thread holds attempts handed over but not yet on the wire (one on the wire here);
    // they were ordered with the old url and secret.
    const store = threadedWebhooks();
    const old = await receiver(() => ({ status: 204, delayMs: 300 }));
    const moved = await receiver(() => ({ status: 204, delayMs: 300 }));
    const { endpoint, secret } = await store.createEndpoint({ url: old.url }, Date.now());
    const id = randomUUID();
    store.changed(Array.from({ length: 6 }, (_, i) => tapped('message.created', i + 1, id)));
    await eventually(() => expect(old.received).toHaveLength(1));
    await store.updateEndpoint(endpoint.id, { url: moved.url }, Date.now());
    await eventually(() => expect(moved.received).toHaveLength(1));
    const { secret: rotated } = await store.rotateSecret(endpoint.id, Date.now());
    await eventually(async () => {
      const page = await store.deliveries(endpoint.id, { limit: 10 }, Date.now());
      expect(page.deliveries.map((delivery) => delivery.status)).toEqual(
        Array<string>(6).fill('succeeded'),
      );
    }, 10_000);
    // The one on the wire at the PATCH went to the old url; the others to the new one, each
    // once, and every one sent after the rotation is signed with both secrets.
    expect(old.received).toHaveLength(1);
    expect(moved.received).toHaveLength(5);
    expect(new Set(moved.received.map((r) => r.id)).size).toBe(5);
    const [signedBefore, ...signedAfter] = moved.received;
    expect(verifies(secret, signedBefore) && !verifies(rotated, signedBefore)).toBe(true);
    for (const request of signedAfter) {
      expect(verifies(secret, request) && verifies(rotated, request)).toBe(true);
    }
  }, 30_000);

  it('aborts attempts in flight on stop, and re-sends them after a restore under the same id', async () => {
    const store = webhooks();
    store.start();
    const slow = await receiver(() => ({ status: 200, delayMs: 10_000 }));
    const { endpoint, secret } = await store.createEndpoint({ url: slow.url }, Date.now());
    const change = tapped('message.created', 1);
    store.changed([change]);
    await eventually(() => expect(slow.received).toHaveLength(1));
    await store.stop();
    const [pending] = (await store.deliveries(endpoint.id, { limit: 10 }, Date.now())).deliveries;
    // The aborted attempt is not one: the delivery is pending, as if never tried.
    expect(pending).toMatchObject({ id: changeEvent(change).id, status: 'pending', attempts: [] });
    const lines = [...store.snapshotLines()];
    expect(lines).toHaveLength(2);

    const back = await receiver();
    const restored = webhooks();
    for (const line of lines) {
      expect(restored.restore(line)).toBe(true);
    }
    expect(restored.restore('{"id":"a conversation"}')).toBe(false);
    await restored.updateEndpoint(endpoint.id, { url: back.url }, Date.now());
    // Nothing is sent before the start.
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(back.received).toHaveLength(0);
    restored.start();
    await eventually(() => expect(back.received).toHaveLength(1));
    expect(back.received[0].id).toBe(changeEvent(change).id);
    expect(back.received[0].body).toBe(changeEvent(change).body);
    expect(verifies(secret, back.received[0])).toBe(true);
  });

  it('writes its endpoints and queue in the snapshot file beside the conversations (0600)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'webhook-snapshot-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'store.jsonl');
    const snapshot = { path } as unknown as SnapshotSettings;

    const store = webhooks();
    const repository = conversations(store);
    const { endpoint, secret } = await store.createEndpoint(
      { url: 'http://127.0.0.1:9/x' },
      Date.now(),
    );
    await store.updateEndpoint(endpoint.id, { enabled: false }, Date.now());
    await store.sendTest(endpoint.id, Date.now());
    const { id } = await repository.createConversation({
      id: randomUUID(),
      now: Date.now(),
      maxConversations: 10,
    });
    await new SnapshotService(snapshot, repository, store).onApplicationShutdown();
    expect((await stat(path)).mode & 0o777).toBe(0o600);

    const hook = await receiver();
    const restoredWebhooks = webhooks();
    const restoredConversations = conversations(restoredWebhooks);
    await new SnapshotService(snapshot, restoredConversations, restoredWebhooks).onModuleInit();
    expect(await restoredConversations.getConversation(id)).not.toBeNull();
    const [view] = await restoredWebhooks.listEndpoints(Date.now());
    expect(view).toMatchObject({ id: endpoint.id, disabledReason: 'manual' });
    const [test] = (await restoredWebhooks.deliveries(endpoint.id, { limit: 10 }, Date.now()))
      .deliveries;
    expect(test).toMatchObject({ type: 'webhook.test', status: 'pending' });
    restoredWebhooks.start();
    await restoredWebhooks.updateEndpoint(
      endpoint.id,
      { url: hook.url, enabled: true },
      Date.now(),
    );
    await eventually(() => expect(hook.ids()).toEqual([test.id]));
    expect(verifies(secret, hook.received[0])).toBe(true);
  });
});
