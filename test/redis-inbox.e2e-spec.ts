import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { clusterNodeList } from '../src/config/app.config';
import {
  connectRedis,
  connectRedisCluster,
} from '../src/conversations/repositories/redis/redis-client';
import { RedisConversationRepository } from '../src/conversations/repositories/redis/redis-conversation.repository';
import { RedisStoreConnection } from '../src/conversations/repositories/redis/redis-connection';
import { RedisKeys } from '../src/conversations/repositories/redis/redis-keys';
import {
  InboxEvent,
  InboxQuery,
  InboxRow,
  Sender,
} from '../src/conversations/conversation.repository';
import { stateChangeJson } from '../src/conversations/records/conversation-state';
import { InitialState } from '../src/conversations/records/conversation.codec';
import { describeWithRedis, keysUnder } from './utils/redis';
import { describeWithRedisCluster } from './utils/redis-cluster';

const LIMITS = { maxConversations: 10_000, maxMessages: 1_000 };

/** Where the suite runs: one Redis, or a Redis Cluster. */
interface InboxEnv {
  /** A repository on the key prefix: an instance of its own (its own client). */
  open(prefix: string): Promise<RedisConversationRepository>;
  newPrefix(): string;
  /** A client for the test's own look at the data (single-key commands only). */
  admin: Redis | Cluster;
  /** Every key under the prefix. */
  keys(prefix: string): Promise<string[]>;
  /** Kills the client connections of that name (CLIENT KILL), on every node. */
  kill(name: string): Promise<number>;
}

/** Kills one node's connections named `name`; how many. */
async function killNamed(client: Redis, name: string): Promise<number> {
  const list = String(await client.client('LIST'));
  const ids = [...list.matchAll(/^id=(\d+) .*\bname=(\S*)/gm)]
    .filter(([, , named]) => named === name)
    .map(([, id]) => id);
  for (const id of ids) {
    await client.client('KILL', 'ID', id);
  }
  return ids.length;
}

describeWithRedis('Redis store: the agent inbox', (redis) => {
  inboxSuite(() => ({
    open: async (prefix) =>
      new RedisConversationRepository(await connectRedis(redis().url, 2_000), prefix, redis().url),
    newPrefix: () => redis().newPrefix(),
    admin: redis().admin,
    keys: (prefix) => redis().keys(prefix),
    kill: (name) => killNamed(redis().admin, name),
  }));
});

describeWithRedisCluster('Redis Cluster store: the agent inbox', (cluster) => {
  jest.setTimeout(60_000);
  let admin: Cluster;
  beforeAll(() => {
    admin = cluster().client();
  });
  afterAll(() => admin.disconnect());
  let prefixes = 0;
  inboxSuite(() => ({
    open: async (prefix) =>
      new RedisConversationRepository(
        await connectRedisCluster(clusterNodeList(cluster().seeds) ?? [], 2_000),
        prefix,
        cluster().seeds,
      ),
    newPrefix: () => `test:${randomUUID().slice(0, 8)}:${prefixes++}:`,
    admin,
    keys: async (prefix) => {
      const found: string[] = [];
      for (const master of await cluster().masters()) {
        const client = master.client();
        try {
          found.push(...(await keysUnder(client, prefix)));
        } finally {
          client.disconnect();
        }
      }
      return found.sort();
    },
    kill: async (name) => {
      let killed = 0;
      // Replicas too: the inbox feed subscribes on any node the client holds ready.
      for (const node of cluster().nodes.filter((one) => one.running)) {
        const client = node.client();
        try {
          killed += await killNamed(client, name);
        } finally {
          client.disconnect();
        }
      }
      return killed;
    },
  }));
});

function inboxSuite(env: () => InboxEnv): void {
  let prefix: string;
  let keys: RedisKeys;
  let a: RedisConversationRepository;
  let b: RedisConversationRepository;

  /** Two instances on one Redis and one key prefix, as two machines of one deployment. */
  beforeEach(async () => {
    prefix = env().newPrefix();
    keys = new RedisKeys(prefix);
    [a, b] = await Promise.all([env().open(prefix), env().open(prefix)]);
  });

  afterEach(async () => {
    await Promise.all([a.onApplicationShutdown(), b.onApplicationShutdown()]);
  });

  async function create(now: number, initial?: InitialState): Promise<string> {
    const { id } = await a.createConversation({ id: randomUUID(), now, initial, ...LIMITS });
    return id;
  }

  function post(id: string, sender: Sender, now: number, content = `${sender} at ${now}`) {
    return a.appendMessage(id, {
      id: randomUUID(),
      sender,
      content,
      timestamp: now,
      now,
      ...LIMITS,
    });
  }

  const header = async (id: string) => {
    const history = await b.getConversation(id);
    if (!history) {
      throw new Error(`no conversation ${id}`);
    }
    return history;
  };

  const query = (over: Partial<InboxQuery> = {}): InboxQuery => ({
    statuses: null,
    sort: '-lastActivityAt',
    limit: 50,
    t0: 1_000_000,
    now: 1_000_000,
    ...over,
  });

  /** Every row of a traversal, page by page (`between` runs between pages). */
  async function walk(
    q: InboxQuery,
    between: (page: number) => Promise<void> = async () => undefined,
  ): Promise<InboxRow[]> {
    const rows: InboxRow[] = [];
    let after: InboxQuery['after'];
    for (let page = 0; page < 200; page++) {
      const result = await b.list({ ...q, after });
      rows.push(...result.rows);
      if (!result.next) {
        return rows;
      }
      after = result.next;
      await between(page);
    }
    throw new Error('the traversal did not end');
  }

  it('keeps the state and reads records from before the inbox as open and unassigned', async () => {
    const id = await create(1_000, {
      status: 'pending',
      team: 'billing',
      customer: { externalId: 'x1', name: 'Ann' },
      metadata: { plan: 'pro', seats: 3 },
    });
    expect((await header(id)).state).toEqual({
      status: 'pending',
      snoozedUntil: 0,
      assignee: '',
      team: 'billing',
      customer: { externalId: 'x1', name: 'Ann' },
      metadata: { plan: 'pro', seats: 3 },
      stateSeq: 0,
    });

    const updated = await b.updateState(id, {
      patch: { status: 'snoozed', snoozedUntil: 50_000, metadata: { seats: null, vip: true } },
      now: 2_000,
    });
    expect(updated).toMatchObject({ seq: 1, conversation: { version: 1, lastActivityAt: 2_000 } });
    const after = await header(id);
    expect(after.state).toEqual({
      status: 'snoozed',
      snoozedUntil: 50_000,
      assignee: '',
      team: 'billing',
      customer: { externalId: 'x1', name: 'Ann' },
      metadata: { plan: 'pro', vip: true },
      stateSeq: 1,
    });
    expect(after.version).toBe(1);
    const replay = await a.changesAfter(id, 0);
    expect(replay?.changes).toEqual([
      {
        conversationId: id,
        seq: 1,
        type: 'conversation.updated',
        data: stateChangeJson(1, ['status', 'snoozedUntil', 'metadata'], after.state),
      },
    ]);

    // Nothing changed: no seq, nothing written.
    expect(await a.updateState(id, { patch: { team: 'billing' }, now: 3_000 })).not.toHaveProperty(
      'seq',
    );
    expect((await header(id)).version).toBe(1);
    // If-Match is the contract's (conversation-inbox.contract.ts), on every store.
    await expect(
      a.updateState(randomUUID(), { patch: { status: 'open' }, now: 1 }),
    ).rejects.toMatchObject({ code: 'conversation_not_found' });

    // A record from before the inbox: no state fields, no counters.
    const old = await create(1_000);
    await env().admin.hdel(
      keys.conversation(old)[0],
      'st',
      'as',
      'te',
      'cu',
      'md',
      'ss',
      'uc',
      'ua',
      'ws',
    );
    const read = await header(old);
    expect(read.state).toEqual({
      status: 'open',
      snoozedUntil: 0,
      assignee: '',
      team: '',
      customer: {},
      metadata: {},
      stateSeq: 0,
    });
    expect(read.counters).toEqual({ unreadCustomer: 0, unreadAgent: 0, waitingSince: 0 });
  });

  it('reopens on a customer post: the message takes N, the reopen N+1, in one step', async () => {
    const id = await create(1_000, { assignee: 'agent:1', customer: { name: 'Bo "B"' } });
    await a.updateState(id, { patch: { status: 'snoozed', snoozedUntil: 90_000 }, now: 1_100 });
    const message = await post(id, 'customer', 1_200);
    expect(message.seq).toBe(2);
    const state = (await header(id)).state;
    expect(state).toMatchObject({ status: 'open', snoozedUntil: 0, stateSeq: 3 });
    const replay = await b.changesAfter(id, 1);
    expect(replay?.changes.map((change) => [change.seq, change.type])).toEqual([
      [2, 'message.created'],
      [3, 'conversation.updated'],
    ]);
    // The Lua form of the event is stateChangeJson's, to the byte.
    expect(replay?.changes[1].data).toBe(stateChangeJson(3, ['status', 'snoozedUntil'], state));

    await a.updateState(id, { patch: { status: 'resolved' }, now: 1_300 });
    await post(id, 'agent', 1_400); // an agent post does not reopen
    expect((await header(id)).state.status).toBe('resolved');
    await post(id, 'customer', 1_500);
    const reopened = await header(id);
    expect(reopened.version).toBe(7);
    expect((await b.changesAfter(id, 6))?.changes[0].data).toBe(
      stateChangeJson(7, ['status'], reopened.state),
    );
  });

  it('lists in order with filters, never twice, while posts arrive', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      ids.push(await create(10_000 + i * 10));
    }
    // Some waiting (customer posts), some answered, some assigned, some resolved.
    for (let i = 0; i < 40; i += 3) {
      await post(ids[i], 'customer', 20_000 + i);
    }
    for (let i = 0; i < 40; i += 6) {
      await post(ids[i], 'agent', 21_000 + i);
    }
    for (let i = 0; i < 40; i += 4) {
      await a.updateState(ids[i], { patch: { assignee: 'agent:7' }, now: 22_000 + i });
    }
    for (let i = 1; i < 40; i += 5) {
      await a.updateState(ids[i], { patch: { status: 'resolved' }, now: 23_000 + i });
    }
    const headers = await Promise.all(ids.map(header));
    const byId = new Map(headers.map((h) => [h.id, h]));
    const expected = (keep: (id: string) => boolean) =>
      [...headers]
        .filter((h) => keep(h.id))
        .sort((x, y) => y.lastActivityAt - x.lastActivityAt || (y.id < x.id ? -1 : 1))
        .map((h) => h.id);

    // Unfiltered, in pages of 7: newest activity first, ties by id.
    expect((await walk(query({ limit: 7 }))).map((row) => row.id)).toEqual(expected(() => true));
    // Filters.
    const open = await walk(query({ statuses: ['open'], limit: 5 }));
    expect(open.map((row) => row.id)).toEqual(
      expected((id) => byId.get(id)?.state.status === 'open'),
    );
    expect((await walk(query({ assignee: 'agent:7' }))).map((row) => row.id)).toEqual(
      expected((id) => byId.get(id)?.state.assignee === 'agent:7'),
    );
    expect((await walk(query({ assignee: '' }))).map((row) => row.id)).toEqual(
      expected((id) => byId.get(id)?.state.assignee === ''),
    );
    expect((await walk(query({ assignee: null }))).map((row) => row.id)).toEqual(
      expected((id) => byId.get(id)?.state.assignee !== ''),
    );
    expect((await walk(query({ unread: 'agent' }))).map((row) => row.id)).toEqual(
      expected((id) => (byId.get(id)?.counters.unreadAgent ?? 0) > 0),
    );
    expect((await walk(query({ activeSince: 22_000 }))).map((row) => row.id)).toEqual(
      expected((id) => (byId.get(id)?.lastActivityAt ?? 0) >= 22_000),
    );
    // An assignee's list walks that assignee's own index; a reassignment leaves it.
    const [moved0, kept0] = expected((id) => byId.get(id)?.state.assignee === 'agent:7');
    await a.updateState(moved0, { patch: { assignee: 'agent:8' }, now: 24_000 });
    expect((await walk(query({ assignee: 'agent:7' }))).map((row) => row.id)[0]).toBe(kept0);
    expect((await walk(query({ assignee: 'agent:8' }))).map((row) => row.id)).toEqual([moved0]);
    expect(await env().admin.zscore(keys.inboxAssignee('agent:7'), moved0)).toBeNull();
    await a.updateState(moved0, { patch: { assignee: 'agent:7' }, now: 24_000 });
    headers[ids.indexOf(moved0)] = await header(moved0);
    byId.set(moved0, headers[ids.indexOf(moved0)]);
    // The queue: longest waiting first, only those waiting.
    const waiting = headers
      .filter((h) => h.counters.waitingSince > 0)
      .sort((x, y) => x.counters.waitingSince - y.counters.waitingSince)
      .map((h) => h.id);
    expect(waiting.length).toBeGreaterThan(3);
    expect((await walk(query({ sort: 'waitingSince', limit: 2 }))).map((row) => row.id)).toEqual(
      waiting,
    );
    // A row carries the last message, cut.
    const rows = await b.list(query({ limit: 40 }));
    const row = rows.rows.find((r) => r.id === ids[0]);
    expect(row).toMatchObject({
      id: ids[0],
      lastMessage: { sender: 'agent', content: `agent at ${21_000}` },
      counters: { unreadCustomer: 1, unreadAgent: 1, waitingSince: 0 },
      state: { assignee: 'agent:7' },
    });

    // Posts during a walk: never twice; every conversation whose key did not change is found.
    const t0 = 50_000;
    const moved = new Set<string>();
    const seen = await walk(query({ limit: 4, t0, now: t0 }), async (page) => {
      const id = ids[(page * 7) % ids.length];
      moved.add(id);
      await post(id, 'customer', t0 + page);
    });
    const seenIds = seen.map((r) => r.id);
    expect(new Set(seenIds).size).toBe(seenIds.length);
    for (const id of ids) {
      if (!moved.has(id)) {
        expect(seenIds).toContain(id);
      }
    }
  });

  it('wakes a snooze when due, through the state change path, and drops stale entries', async () => {
    const id = await create(1_000);
    const other = await create(1_000);
    await a.updateState(id, { patch: { status: 'snoozed', snoozedUntil: 5_000 }, now: 1_100 });
    await a.updateState(other, { patch: { status: 'snoozed', snoozedUntil: 5_000 }, now: 1_100 });
    // Re-opened by hand: its due entry is stale.
    await a.updateState(other, { patch: { status: 'open' }, now: 1_200 });
    // Read as open from snoozedUntil on, before the wake is written.
    expect(
      (await b.list(query({ statuses: ['open'], now: 5_000 }))).rows.map((row) => row.id).sort(),
    ).toEqual([id, other].sort());
    expect(await b.wakeSnoozed(4_999)).toBe(0);
    expect(await b.wakeSnoozed(5_000)).toBe(1);
    const woken = await header(id);
    expect(woken.state).toMatchObject({ status: 'open', snoozedUntil: 0, stateSeq: 2 });
    expect((await a.changesAfter(id, 1))?.changes[0].data).toBe(
      stateChangeJson(2, ['status', 'snoozedUntil'], woken.state),
    );
    for (const bucket of keys.inboxBuckets('snooze')) {
      expect(await env().admin.zcard(bucket)).toBe(0);
    }
    expect(await a.counts()).toEqual({
      open: 2,
      pending: 0,
      snoozed: 0,
      resolved: 0,
      assigned: 0,
      unassigned: 2,
    });
  });

  it('keeps a snoozed conversation past its idle time, and an eviction leaves every index', async () => {
    const snoozed = await create(1_000);
    const idle = await create(1_000);
    await post(idle, 'customer', 1_000);
    await a.updateState(snoozed, {
      patch: { status: 'snoozed', snoozedUntil: 100_000, assignee: 'agent:2' },
      now: 1_000,
    });
    expect(await a.evictInactive(50_000)).toBe(1);
    expect(await header(snoozed)).toBeTruthy();
    expect(await b.getConversation(idle)).toBeNull();
    expect(await a.counts()).toEqual({
      open: 0,
      pending: 0,
      snoozed: 1,
      resolved: 0,
      assigned: 1,
      unassigned: 0,
    });
    expect(await a.counts('agent:2')).toMatchObject({ snoozed: 1, assigned: 1 });
    expect(await a.evictInactive(100_001)).toBe(1);
    const left = await env().keys(prefix);
    expect(left.filter((key) => key.includes('{ix:') && !key.includes('{ix:counts}'))).toEqual([]);
    expect(await a.counts()).toEqual({
      open: 0,
      pending: 0,
      snoozed: 0,
      resolved: 0,
      assigned: 0,
      unassigned: 0,
    });
  });

  it('counts the unread messages of a record from before the inbox on its first change', async () => {
    const id = await create(1_000);
    await post(id, 'customer', 1_100);
    const reply = await post(id, 'agent', 1_200);
    await post(id, 'customer', 1_300);
    await env().admin.hdel(keys.conversation(id)[0], 'uc', 'ua', 'ws');
    await post(id, 'customer', 1_400);
    expect((await header(id)).counters).toEqual({
      unreadCustomer: 1,
      unreadAgent: 3,
      waitingSince: 1_300,
    });
    await env().admin.hdel(keys.conversation(id)[0], 'uc', 'ua', 'ws');
    await a.deleteMessage(id, reply.id, 1_500);
    expect((await header(id)).counters).toEqual({
      unreadCustomer: 0,
      unreadAgent: 3,
      waitingSince: 1_100,
    });
    await env().admin.hdel(keys.conversation(id)[0], 'uc', 'ua', 'ws');
    await a.markRead(id, { sender: 'customer', seq: 1, now: 1_600 });
    expect((await header(id)).counters).toEqual({
      unreadCustomer: 0,
      unreadAgent: 3,
      waitingSince: 1_100,
    });
  });

  it('backfills the indexes of records from before the inbox, once, under the sweeper lock', async () => {
    const id = await create(1_000);
    await post(id, 'customer', 1_100);
    await post(id, 'customer', 1_200);
    await env().admin.hdel(keys.conversation(id)[0], 'uc', 'ua', 'ws', 'ic');
    // As an older build left it: no counters, not counted, no inbox index entries, no counts,
    // no marker.
    for (const name of ['act', 'wait', 'snooze'] as const) {
      await Promise.all(keys.inboxBuckets(name).map((bucket) => env().admin.del(bucket)));
    }
    await env().admin.del(keys.inboxCounts);
    expect((await b.list(query())).rows).toEqual([]);
    await a.evictInactive(0);
    expect((await b.list(query())).rows.map((row) => row.id)).toEqual([id]);
    expect((await b.list(query({ sort: 'waitingSince' }))).rows.map((row) => row.id)).toEqual([id]);
    expect(await env().admin.hget(keys.meta, 'inboxIndexed')).toBe('1');
    expect((await header(id)).counters).toEqual({
      unreadCustomer: 0,
      unreadAgent: 2,
      waitingSince: 1_100,
    });
    expect(await b.counts()).toMatchObject({ open: 1, unassigned: 1 });
  });

  it('keeps the counts exact through a reindex while conversations change', async () => {
    const ids = await Promise.all(
      Array.from({ length: 300 }, (_, i) => create(1_000 + i, i % 3 ? {} : { assignee: 'x' })),
    );
    // The next sweep reindexes (as after an upgrade) while 400 changes go on.
    await env().admin.hdel(keys.meta, 'inboxIndexed');
    await Promise.all([
      a.evictInactive(0),
      ...ids.map((id, i) =>
        b.updateState(id, { patch: { status: i % 2 ? 'pending' : 'resolved' }, now: 2_000 }),
      ),
      ...Array.from({ length: 100 }, () => create(2_000)),
    ]);
    expect(await env().admin.hget(keys.meta, 'inboxIndexed')).toBe('1');
    // What the records say, counted whole.
    const rows = await walk(query({ limit: 200 }));
    expect(rows).toHaveLength(400);
    const expected = { open: 0, pending: 0, snoozed: 0, resolved: 0, assigned: 0, unassigned: 0 };
    for (const row of rows) {
      expected[row.state.status]++;
      expected[row.state.assignee ? 'assigned' : 'unassigned']++;
    }
    expect(await b.counts()).toEqual(expected);
  });

  it("sets a reindex's count only if no change moved the counts during its walk", async () => {
    const { commands } = (a as unknown as { inbox: { connection: RedisStoreConnection } }).inbox
      .connection;
    const counts = keys.inboxCounts;
    await commands.chatCountInbox(counts, 'open', 2, 'unassigned', 2);
    const gen = await env().admin.hget(counts, '~gen');
    expect(gen).toBe('1');
    // A change after the walk began: the walk's count (made without it) is not set.
    await commands.chatCountInbox(counts, 'open', 1, 'unassigned', 1);
    expect(
      await commands.chatSetInboxCounts(counts, gen as string, 'open', 2, 'unassigned', 2),
    ).toBe(0);
    expect(await env().admin.hgetall(counts)).toEqual({ open: '3', unassigned: '3', '~gen': '2' });
    // No change during the walk: set, and the generation kept.
    expect(await commands.chatSetInboxCounts(counts, '2', 'pending', 3, 'assigned', 3)).toBe(1);
    expect(await env().admin.hgetall(counts)).toEqual({ pending: '3', assigned: '3', '~gen': '2' });
    // Counts that all come to 0 leave no key behind, the generation with them.
    await commands.chatCountInbox(counts, 'pending', -3, 'assigned', -3);
    expect(await env().admin.exists(counts)).toBe(0);
  });

  it('marks a record from before the counts once, and never makes a record of a gone one', async () => {
    const id = await create(1_000);
    const [conv] = keys.conversation(id);
    const { commands } = (a as unknown as { inbox: { connection: RedisStoreConnection } }).inbox
      .connection;
    // A create's record is counted by its own second step: marked already.
    expect(await commands.chatMarkCounted(conv)).toBe(0);
    await env().admin.hdel(conv, 'ic');
    expect(await commands.chatMarkCounted(conv)).toBe(1);
    expect(await commands.chatMarkCounted(conv)).toBe(0);
    const [gone] = keys.conversation(randomUUID());
    expect(await commands.chatMarkCounted(gone)).toBe(0);
    expect(await env().admin.exists(gone)).toBe(0);
  });

  it('tells the inbox feed of every instance: created, updated with the row, evicted', async () => {
    const events: InboxEvent[] = [];
    const watch = b.watchInbox({ event: (event) => events.push(event), gap: () => undefined });
    await watch.ready;
    const id = await create(1_000);
    await post(id, 'customer', 1_100, 'hello');
    await a.updateState(id, { patch: { status: 'pending' }, now: 1_200 });
    // Told in the order heard, each with its row as read when heard.
    await waitFor(() => events.length >= 3);
    await a.evictInactive(10_000);
    await waitFor(() => events.length >= 4).catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(events.map((event) => event.type))}`);
    });
    watch.stop();
    expect(events.map((event) => event.type)).toEqual([
      'conversation.created',
      'conversation.updated',
      'conversation.updated',
      'conversation.evicted',
    ]);
    const last = events[2];
    expect(last.type === 'conversation.updated' && last.row).toMatchObject({
      id,
      state: { status: 'pending' },
      lastMessage: { sender: 'customer', content: 'hello' },
    });
    expect(events[3]).toEqual({ type: 'conversation.evicted', conversationId: id });
  });

  it('tells the feed of a gap when its subscriber reconnects, then goes on', async () => {
    const events: InboxEvent[] = [];
    let gaps = 0;
    const watch = b.watchInbox({ event: (event) => events.push(event), gap: () => gaps++ });
    await watch.ready;
    expect(await env().kill(`${prefix}sub:inbox`)).toBe(1);
    await waitFor(() => gaps === 1);
    const id = await create(1_000);
    await waitFor(() => events.length === 1);
    watch.stop();
    expect(events).toMatchObject([{ type: 'conversation.created', row: { id } }]);
  });
}

async function waitFor(done: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > until) {
      throw new Error('timed out');
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
