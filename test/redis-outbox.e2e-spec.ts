import { randomUUID } from 'node:crypto';
import {
  ChangeOutbox,
  ChangeSink,
  EvictedConversation,
  TappedChange,
} from '../src/conversations/change-outbox';
import { clusterNodeList } from '../src/config/app.config';
import {
  connectRedis,
  connectRedisCluster,
} from '../src/conversations/repositories/redis/redis-client';
import {
  RedisConversationRepository,
  RedisStoreOptions,
} from '../src/conversations/repositories/redis/redis-conversation.repository';
import { RedisKeys } from '../src/conversations/repositories/redis/redis-keys';
import { DeliveryEnqueuer, FAN_OUT_GROUP, RedisFanOut } from '../src/webhooks/redis/redis-fan-out';
import { RedisOutbox } from '../src/webhooks/redis/redis-outbox';
import { RedisReconcile } from '../src/webhooks/redis/redis-reconcile';
import {
  changeEvent,
  EndpointRecord,
  newEndpoint,
  TRANSCRIPT_PART_BYTES,
  WebhookEvent,
} from '../src/webhooks/webhook.model';
import { SILENT_OBSERVER } from '../src/webhooks/delivery-policy';
import { describeWithRedis } from './utils/redis';
import { describeWithRedisCluster } from './utils/redis-cluster';

const LIMITS = { maxConversations: 1_000, maxMessages: 1_000 };

/** A sink that passes to the real one, or skips (a process killed right after its write). */
class SkippableSink implements ChangeSink {
  skip = false;
  constructor(readonly real: RedisOutbox) {}
  changed(changes: TappedChange[]): Promise<void> {
    return this.skip ? Promise.resolve() : this.real.changed(changes);
  }
  evicted(conversations: EvictedConversation[]): Promise<void> {
    return this.real.evicted(conversations);
  }
  wantsTranscripts(): boolean {
    return this.real.wantsTranscripts();
  }
}

/** A fake of the delivery queues: what each endpoint was given. */
class FakeEnqueuer implements DeliveryEnqueuer {
  readonly received = new Map<string, WebhookEvent[]>();
  constructor(public endpoints: EndpointRecord[]) {}
  endpointsNow(): Promise<EndpointRecord[]> {
    return Promise.resolve(this.endpoints);
  }
  enqueue(endpointId: string, events: WebhookEvent[]): Promise<void> {
    const list = this.received.get(endpointId) ?? [];
    list.push(...events);
    this.received.set(endpointId, list);
    return Promise.resolve();
  }
  ids(endpointId: string): string[] {
    return (this.received.get(endpointId) ?? []).map((event) => event.id);
  }
}

async function until(check: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error('condition not met in time');
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describeWithRedis('Redis webhooks outbox', (redis) => {
  const opened: { close: () => Promise<void> }[] = [];

  afterEach(async () => {
    for (const item of opened.splice(0).reverse()) {
      await item.close();
    }
  });

  /** A repository with a Redis outbox attached (through a sink that can skip). */
  async function open(
    prefix = redis().newPrefix(),
    options: RedisStoreOptions & { transcripts?: boolean } = {},
  ) {
    const client = await connectRedis(redis().url, 2_000);
    const outbox = new ChangeOutbox();
    const repository = new RedisConversationRepository(client, prefix, redis().url, {
      ...options,
      outbox,
    });
    const sink = new RedisOutbox(repository.connection, {
      wantsTranscripts: () => options.transcripts ?? false,
    });
    const skippable = new SkippableSink(sink);
    outbox.attach(skippable);
    opened.push({ close: () => repository.onApplicationShutdown() });
    return { prefix, repository, sink, skippable, keys: new RedisKeys(prefix), client };
  }

  /** The outbox's entries as events, in order. */
  async function outboxEvents(prefix: string): Promise<WebhookEvent[]> {
    const entries = (await redis().admin.xrange(new RedisKeys(prefix).webhookOutbox, '-', '+')) as [
      string,
      string[],
    ][];
    return entries.map(([, [field, value]]) =>
      field === 'c'
        ? changeEvent(JSON.parse(value) as TappedChange)
        : (JSON.parse(value) as WebhookEvent),
    );
  }

  const evt = (id: string, life: number, suffix: string | number) =>
    `evt_${id.replace(/-/g, '')}_${life}_${suffix}`;

  async function lifeOf(prefix: string, id: string): Promise<number> {
    return Number(await redis().admin.hget(`${prefix}{${id}}:conv`, 'l'));
  }

  it('queues every kind of change once, with its id and the data its event stream sends', async () => {
    const { prefix, repository, keys } = await open();
    const id = randomUUID();
    const now = Date.now();
    await repository.createConversation({ id, now, ...LIMITS, initial: { assignee: '' } });
    const post = (sender: 'customer' | 'agent', content: string) =>
      repository.appendMessage(id, {
        id: randomUUID(),
        sender,
        content,
        timestamp: now,
        now,
        ...LIMITS,
      });
    const first = await post('agent', 'hello'); // 1
    await repository.updateState(id, { patch: { status: 'resolved' }, now }); // 2
    await post('customer', 'again'); // 3, and the reopen: 4
    await repository.deleteMessage(id, first.id, now); // 5
    await repository.markRead(id, { sender: 'agent', seq: 3, now }); // 6
    await repository.updateState(id, { patch: { assignee: 'ann' }, claim: true, now }); // 7
    await repository.updateState(id, { patch: { status: 'snoozed', snoozedUntil: now + 5 }, now }); // 8
    expect(await repository.wakeSnoozed(now + 10)).toBe(1); // 9

    const life = await lifeOf(prefix, id);
    const events = await outboxEvents(prefix);
    expect(events.map((event) => event.id)).toEqual([
      evt(id, life, 'created'),
      ...[1, 2, 3, 4, 5, 6, 7, 8, 9].map((seq) => evt(id, life, seq)),
    ]);
    expect(events.map((event) => event.type)).toEqual([
      'conversation.created',
      'message.created',
      'conversation.updated',
      'message.created',
      'conversation.updated',
      'message.deleted',
      'conversation.read',
      'conversation.updated',
      'conversation.updated',
      'conversation.updated',
    ]);
    // Each change's data is what its event stream sends.
    const replay = await repository.changesAfter(id, 0);
    expect(replay?.changes).toHaveLength(9);
    for (const change of replay?.changes ?? []) {
      const body = JSON.parse(events[change.seq].body) as {
        data: { conversationId: string; seq: number; change: unknown };
      };
      expect(body.data).toEqual({
        conversationId: id,
        seq: change.seq,
        change: JSON.parse(change.data),
      });
    }
    const created = JSON.parse(events[0].body) as { data: { change: Record<string, unknown> } };
    expect(created.data.change).toMatchObject({ id, status: 'open', messageCount: 0 });
    expect(created.data.change).not.toHaveProperty('customerToken');
    // The mark follows, without the request waiting for it.
    await until(async () => (await redis().admin.hget(keys.conversation(id)[0], 'w')) === '9');
    expect(await redis().admin.hget(keys.conversation(id)[0], 'wd')).toBeNull();
  });

  it('answers a write whose outbox entry cannot be written; the reconcile pass queues it', async () => {
    const { prefix, repository, keys } = await open();
    const id = randomUUID();
    await repository.createConversation({ id, now: Date.now(), ...LIMITS });
    await redis().admin.del(keys.webhookOutbox);
    await redis().admin.set(keys.webhookOutbox, 'not a stream');
    // The outbox is one key (one shard of a cluster): a write must not fail with it.
    await expect(
      repository.appendMessage(id, {
        id: randomUUID(),
        sender: 'agent',
        content: 'stands',
        timestamp: 1,
        now: Date.now(),
        ...LIMITS,
      }),
    ).resolves.toMatchObject({ seq: 1 });
    const history = await repository.getConversation(id);
    expect(history?.messageCount).toBe(1);
    expect(history?.version).toBe(1);
    // The mark stayed: the reconcile pass queues it once the outbox is writable.
    expect(await redis().admin.hget(keys.conversation(id)[0], 'w')).toBe('0');
    await redis().admin.del(keys.webhookOutbox);
    const { sink } = await open(prefix);
    const reconcile = new RedisReconcile((await open(prefix)).repository.connection, sink, {
      everyMs: 1_000,
      graceMs: 0,
    });
    expect(await reconcile.pass()).toMatchObject({ queued: 1, lost: 0 });
    const life = await lifeOf(prefix, id);
    expect((await outboxEvents(prefix)).map((event) => event.id)).toEqual([evt(id, life, 1)]);
  });

  it('fans out each entry once across two consumers, to the endpoints that want it', async () => {
    const { prefix, repository, client, keys } = await open();
    const all = newEndpoint({ url: 'http://127.0.0.1/a' }, Date.now());
    const messagesOnly = newEndpoint(
      { url: 'http://127.0.0.1/b', events: ['message.*'] },
      Date.now(),
    );
    const disabled = {
      ...newEndpoint({ url: 'http://127.0.0.1/c' }, Date.now()),
      disabledReason: 'manual' as const,
    };
    const enqueuer = new FakeEnqueuer([all, messagesOnly, disabled]);
    const fanOuts = [0, 1].map(
      () => new RedisFanOut(client, keys.webhookOutbox, enqueuer, { blockMs: 100, batch: 7 }),
    );
    fanOuts.forEach((fanOut) => fanOut.start());
    opened.push({
      close: () => Promise.all(fanOuts.map((fanOut) => fanOut.stop())).then(() => undefined),
    });
    const id = randomUUID();
    await repository.createConversation({ id, now: Date.now(), ...LIMITS });
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        repository.appendMessage(id, {
          id: randomUUID(),
          sender: 'agent',
          content: `m${i}`,
          timestamp: i,
          now: Date.now(),
          ...LIMITS,
        }),
      ),
    );
    const life = await lifeOf(prefix, id);
    await until(() => enqueuer.ids(all.id).length >= 41);
    await until(async () => (await redis().admin.xlen(keys.webhookOutbox)) === 0);
    const expected = [
      evt(id, life, 'created'),
      ...Array.from({ length: 40 }, (_, i) => evt(id, life, i + 1)),
    ];
    expect([...enqueuer.ids(all.id)].sort()).toEqual([...expected].sort());
    expect([...enqueuer.ids(messagesOnly.id)].sort()).toEqual(expected.slice(1).sort());
    expect(enqueuer.ids(disabled.id)).toEqual([]);
    // An endpoint added now gets what is fanned out from now on.
    const late = newEndpoint({ url: 'http://127.0.0.1/d' }, Date.now());
    enqueuer.endpoints = [...enqueuer.endpoints, late];
    await repository.markRead(id, { sender: 'customer', seq: 40, now: Date.now() });
    await until(() => enqueuer.ids(late.id).length === 1);
    expect(enqueuer.ids(late.id)).toEqual([evt(id, life, 41)]);
  });

  it("takes over a dead consumer's pending entries", async () => {
    const { prefix, repository, client, keys } = await open();
    const id = randomUUID();
    await repository.createConversation({ id, now: Date.now(), ...LIMITS });
    await redis().admin.xgroup('CREATE', keys.webhookOutbox, FAN_OUT_GROUP, '0', 'MKSTREAM');
    // A consumer that read the entry and died before acknowledging it.
    const taken = (await redis().admin.xreadgroup(
      'GROUP',
      FAN_OUT_GROUP,
      'dead',
      'COUNT',
      10,
      'STREAMS',
      keys.webhookOutbox,
      '>',
    )) as [string, unknown[]][];
    expect(taken[0][1]).toHaveLength(1);
    const endpoint = newEndpoint({ url: 'http://127.0.0.1/a' }, Date.now());
    const enqueuer = new FakeEnqueuer([endpoint]);
    const fanOut = new RedisFanOut(client, keys.webhookOutbox, enqueuer, {
      blockMs: 50,
      claimIdleMs: 200,
      claimEveryMs: 50,
    });
    fanOut.start();
    opened.push({ close: () => fanOut.stop() });
    await until(() => enqueuer.ids(endpoint.id).length === 1);
    expect(enqueuer.ids(endpoint.id)).toEqual([evt(id, await lifeOf(prefix, id), 'created')]);
    await until(async () => (await redis().admin.xlen(keys.webhookOutbox)) === 0);
  });

  it('stops at once while its read is blocked', async () => {
    const { client, keys } = await open();
    const fanOut = new RedisFanOut(client, keys.webhookOutbox, new FakeEnqueuer([]), {
      blockMs: 10_000,
    });
    fanOut.start();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = Date.now();
    await fanOut.stop();
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('reconciles what a writer that died left unqueued, also while another wrote after it', async () => {
    const prefix = redis().newPrefix();
    const a = await open(prefix);
    const b = await open(prefix);
    const post = (repository: RedisConversationRepository, id: string, content: string) =>
      repository.appendMessage(id, {
        id: randomUUID(),
        sender: 'agent',
        content,
        timestamp: 1,
        now: Date.now(),
        ...LIMITS,
      });
    // A creation whose conversation.created was never queued.
    const quiet = randomUUID();
    a.skippable.skip = true;
    await a.repository.createConversation({ id: quiet, now: Date.now(), ...LIMITS });
    // Two writers of one conversation: A dies before queuing seq 2, B queues seq 3.
    const busy = randomUUID();
    a.skippable.skip = false;
    await a.repository.createConversation({ id: busy, now: Date.now(), ...LIMITS });
    await post(a.repository, busy, 'one');
    a.skippable.skip = true;
    await post(a.repository, busy, 'two (lost writer)');
    await post(b.repository, busy, 'three');
    const conv = a.keys.conversation(busy)[0];
    await until(async () => (await redis().admin.hget(conv, 'wd')) === '3');
    expect(await redis().admin.hget(conv, 'w')).toBe('1'); // a max() would say 3

    const lost: number[] = [];
    const reconcile = new RedisReconcile(
      b.repository.connection,
      b.sink,
      { everyMs: 1_000, graceMs: 0 },
      { ...SILENT_OBSERVER, lost: (n) => lost.push(n) },
    );
    const before = (await outboxEvents(prefix)).length;
    expect(await reconcile.pass()).toEqual({ conversations: 2, queued: 2, lost: 0 });
    const added = (await outboxEvents(prefix))
      .slice(before)
      .map((event) => event.id)
      .sort();
    expect(added).toEqual(
      [
        evt(quiet, await lifeOf(prefix, quiet), 'created'),
        evt(busy, await lifeOf(prefix, busy), 2),
      ].sort(),
    );
    expect(await redis().admin.hmget(conv, 'w', 'wd')).toEqual(['3', null]);
    expect(await redis().admin.hget(a.keys.conversation(quiet)[0], 'w')).toBe('0');
    // Nothing left: a second pass queues nothing.
    expect(await reconcile.pass()).toEqual({ conversations: 0, queued: 0, lost: 0 });
    expect(lost).toEqual([]);
  });

  it('leaves a change within the grace to its own request, unless later ones were queued', async () => {
    const { repository, skippable, sink } = await open();
    const post = (id: string) =>
      repository.appendMessage(id, {
        id: randomUUID(),
        sender: 'agent',
        content: 'x',
        timestamp: 1,
        now: Date.now(),
        ...LIMITS,
      });
    const idle = randomUUID();
    const busy = randomUUID();
    await repository.createConversation({ id: idle, now: Date.now(), ...LIMITS });
    await repository.createConversation({ id: busy, now: Date.now(), ...LIMITS });
    skippable.skip = true;
    await post(idle);
    await post(busy);
    skippable.skip = false;
    await post(busy); // queued: its mark stands still below it
    const reconcile = new RedisReconcile(repository.connection, sink, {
      everyMs: 1_000,
      graceMs: 60_000,
    });
    // Just applied: maybe still on its way.
    expect(await reconcile.pass()).toEqual({ conversations: 0, queued: 0, lost: 0 });
    // The mark has stood still past the grace while later changes were queued.
    await redis().admin.hset(`${repository.connection.keys.conversation(busy)[0]}`, 'wt', 1);
    expect(await reconcile.pass()).toEqual({ conversations: 1, queued: 1, lost: 0 });
    // Past the grace, the idle one too.
    expect(await reconcile.pass(Date.now() + 61_000)).toEqual({
      conversations: 1,
      queued: 1,
      lost: 0,
    });
  });

  it('counts a loss past the replay buffer, and queues what the buffer still holds', async () => {
    const prefix = redis().newPrefix();
    const { repository, skippable, sink, keys } = await open(prefix, { replayLimit: 3 });
    const id = randomUUID();
    await repository.createConversation({ id, now: Date.now(), ...LIMITS });
    skippable.skip = true;
    for (let i = 0; i < 5; i++) {
      await repository.appendMessage(id, {
        id: randomUUID(),
        sender: 'customer',
        content: `m${i}`,
        timestamp: 1,
        now: Date.now(),
        ...LIMITS,
      });
    }
    const lost: number[] = [];
    const reconcile = new RedisReconcile(
      repository.connection,
      sink,
      { everyMs: 1_000, graceMs: 0 },
      { ...SILENT_OBSERVER, lost: (n) => lost.push(n) },
    );
    const before = (await outboxEvents(prefix)).length;
    expect(await reconcile.pass()).toEqual({ conversations: 1, queued: 3, lost: 2 });
    expect(lost).toEqual([2]);
    const life = await lifeOf(prefix, id);
    expect((await outboxEvents(prefix)).slice(before).map((event) => event.id)).toEqual([
      evt(id, life, 3),
      evt(id, life, 4),
      evt(id, life, 5),
    ]);
    expect(await redis().admin.hget(keys.conversation(id)[0], 'w')).toBe('5');
    // Told once.
    expect(await reconcile.pass()).toEqual({ conversations: 0, queued: 0, lost: 0 });
  });

  it('tells an eviction with its transcript in parts, after queuing what was left unqueued', async () => {
    const prefix = redis().newPrefix();
    const { repository, skippable } = await open(prefix, { transcripts: true });
    const id = randomUUID();
    const kept = randomUUID();
    await repository.createConversation({ id, now: 1_000, ...LIMITS });
    const content = 'x'.repeat(9_000);
    for (let i = 0; i < 60; i++) {
      await repository.appendMessage(id, {
        id: randomUUID(),
        sender: 'agent',
        content,
        timestamp: 1,
        now: 1_000,
        ...LIMITS,
      });
    }
    skippable.skip = true; // the last post's process dies before queuing it
    await repository.appendMessage(id, {
      id: randomUUID(),
      sender: 'customer',
      content: 'last',
      timestamp: 1,
      now: 1_000,
      ...LIMITS,
    });
    skippable.skip = false;
    await repository.createConversation({ id: kept, now: 5_000, ...LIMITS });
    const before = (await outboxEvents(prefix)).length;

    expect(await repository.evictInactive(2_000)).toBe(1);

    const added = (await outboxEvents(prefix)).slice(before);
    const base = `evt_${id.replace(/-/g, '')}_`;
    expect(added.every((event) => event.id.startsWith(base))).toBe(true);
    const types = added.map((event) => event.type);
    expect(types[0]).toBe('message.created'); // seq 61, queued before the eviction
    expect(added[0].id.endsWith('_61')).toBe(true);
    expect(types[types.length - 1]).toBe('conversation.evicted');
    const parts = added.filter((event) => event.type === 'conversation.transcript');
    expect(parts.length).toBeGreaterThanOrEqual(3);
    let messages = 0;
    parts.forEach((part, i) => {
      expect(Buffer.byteLength(part.body)).toBeLessThanOrEqual(TRANSCRIPT_PART_BYTES);
      const data = (
        JSON.parse(part.body) as { data: { part: number; parts: number; messages: unknown[] } }
      ).data;
      expect(data.part).toBe(i + 1);
      expect(data.parts).toBe(parts.length);
      messages += data.messages.length;
    });
    expect(messages).toBe(61);
    const evicted = JSON.parse(added[added.length - 1].body) as {
      data: { seq: number; change: { lastSeq: number; conversation: { id: string } } };
    };
    expect(evicted.data.change.lastSeq).toBe(61);
    expect(evicted.data.change.conversation.id).toBe(id);
    // The conversation that stays told nothing.
    expect(added.some((event) => event.id.includes(kept.replace(/-/g, '')))).toBe(false);
  });

  it('waits for the outbox entry to reach replicas when asked to (and answers without them)', async () => {
    const prefix = redis().newPrefix();
    const client = await connectRedis(redis().url, 2_000);
    const outbox = new ChangeOutbox();
    const repository = new RedisConversationRepository(client, prefix, redis().url, { outbox });
    opened.push({ close: () => repository.onApplicationShutdown() });
    outbox.attach(new RedisOutbox(repository.connection, { waitReplicas: 1, waitTimeoutMs: 50 }));
    const id = randomUUID();
    // This test Redis has no replica: the WAIT falls short, the create stands and answers; its
    // mark stays low, so the reconcile pass queues it again (a duplicate, dropped by job id).
    await expect(
      repository.createConversation({ id, now: Date.now(), ...LIMITS }),
    ).resolves.toMatchObject({ id });
    expect(await redis().admin.hget(`${prefix}{${id}}:conv`, 'w')).toBe('-1');
    expect(await redis().admin.xlen(new RedisKeys(prefix).webhookOutbox)).toBe(1);
  });
});

describeWithRedisCluster('Redis Cluster webhooks outbox', (cluster) => {
  jest.setTimeout(60_000);

  it('queues, fans out, reconciles and tells evictions across slots, waiting for replicas', async () => {
    const prefix = `test:${randomUUID().slice(0, 8)}:`;
    const seeds = clusterNodeList(cluster().seeds) ?? [];
    const client = await connectRedisCluster(seeds, 2_000);
    const outbox = new ChangeOutbox();
    const repository = new RedisConversationRepository(client, prefix, cluster().seeds, {
      outbox,
      waitReplicas: 1,
      waitTimeoutMs: 2_000,
    });
    const sink = new RedisOutbox(repository.connection, {
      waitReplicas: 1,
      waitTimeoutMs: 2_000,
      wantsTranscripts: () => true,
    });
    const skippable = new SkippableSink(sink);
    outbox.attach(skippable);
    const endpoint = newEndpoint({ url: 'http://127.0.0.1/a' }, Date.now());
    const enqueuer = new FakeEnqueuer([endpoint]);
    const keys = new RedisKeys(prefix);
    const fanOut = new RedisFanOut(client, keys.webhookOutbox, enqueuer, { blockMs: 100 });
    fanOut.start();
    try {
      const ids = Array.from({ length: 6 }, () => randomUUID());
      for (const id of ids) {
        await repository.createConversation({ id, now: 1_000, ...LIMITS });
        await repository.appendMessage(id, {
          id: randomUUID(),
          sender: 'agent',
          content: 'hi',
          timestamp: 1,
          now: 1_000,
          ...LIMITS,
        });
      }
      // One post whose process died before queuing it.
      skippable.skip = true;
      await repository.appendMessage(ids[0], {
        id: randomUUID(),
        sender: 'customer',
        content: 'lost writer',
        timestamp: 1,
        now: 1_000,
        ...LIMITS,
      });
      skippable.skip = false;
      const reconcile = new RedisReconcile(repository.connection, sink, {
        everyMs: 1_000,
        graceMs: 0,
        firstLookBackMs: Date.now(),
      });
      expect(await reconcile.pass()).toMatchObject({ queued: 1, lost: 0 });
      expect(await repository.evictInactive(2_000)).toBe(6);
      const want = (id: string, suffix: string) =>
        enqueuer
          .ids(endpoint.id)
          .some((got) => got.startsWith(`evt_${id.replace(/-/g, '')}_`) && got.endsWith(suffix));
      await until(() =>
        ids.every(
          (id) =>
            want(id, '_created') &&
            want(id, '_1') &&
            want(id, '_evicted') &&
            want(id, '_transcript_1'),
        ),
      );
      expect(want(ids[0], '_2')).toBe(true);
      const got = enqueuer.ids(endpoint.id);
      expect(new Set(got).size).toBe(got.length);
    } finally {
      await fanOut.stop();
      await repository.onApplicationShutdown();
    }
  });
});
