import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { conversationRepositoryContract } from '../../../../test/contracts/conversation-repository.contract';
import { StoreError } from '../../../common/errors/store-error';
import { IdempotentWrite, StoredMessage } from '../../conversation.repository';
import { InMemoryConversationRepository } from './in-memory-conversation.repository';
import { AppendedMessage } from '../../records/message.codec';
import { MESSAGE_OVERHEAD_BYTES, messageBytes } from './byte-budget';

conversationRepositoryContract('in-memory', async () => ({
  repository: new InMemoryConversationRepository(),
  teardown: async () => undefined,
}));

describe('InMemoryConversationRepository snapshot of customer tokens', () => {
  it('keeps whether a token is anonymous, and reads a line from before the mark as anonymous', async () => {
    const repository = new InMemoryConversationRepository();
    const byKey = randomUUID();
    const anonymous = randomUUID();
    for (const [id, isAnonymous] of [
      [byKey, false],
      [anonymous, true],
    ] as const) {
      await repository.createConversation({
        id,
        now: 1_000,
        maxConversations: 10,
        customerToken: { hash: `hash-${id}`, anonymous: isAnonymous },
      });
    }
    const lines = [...repository.snapshotLines()];
    const restored = new InMemoryConversationRepository();
    lines.forEach((line) => restored.restore(line));
    expect(await restored.customerToken(byKey)).toEqual({
      hash: `hash-${byKey}`,
      anonymous: false,
    });
    expect(await restored.customerToken(anonymous)).toMatchObject({ anonymous: true });

    const old = new InMemoryConversationRepository();
    for (const line of lines) {
      const before = JSON.parse(line) as Record<string, unknown>;
      delete before.tokenMintedBy;
      old.restore(JSON.stringify(before));
    }
    expect(await old.customerToken(byKey)).toEqual({ hash: `hash-${byKey}`, anonymous: true });
  });
});

describe("InMemoryConversationRepository: a conversation's life", () => {
  const create = (repository: InMemoryConversationRepository, id: string) =>
    repository.createConversation({ id, now: 1_000, maxConversations: 10 });
  const lifeOf = async (repository: InMemoryConversationRepository, id: string) =>
    (await repository.getConversation(id))?.life;

  it('is drawn at random, so two stores never give one id the same life', async () => {
    const id = randomUUID();
    const first = new InMemoryConversationRepository();
    const second = new InMemoryConversationRepository();
    await create(first, id);
    await create(second, id);

    const lives = [await lifeOf(first, id), await lifeOf(second, id)];
    for (const life of lives) {
      expect(Number.isSafeInteger(life)).toBe(true);
      expect(life).toBeGreaterThanOrEqual(0);
      expect(life).toBeLessThan(2 ** 47);
    }
    expect(lives[0]).not.toBe(lives[1]);
  });

  it('is kept across a snapshot, and drawn anew for a line from before it was kept', async () => {
    const id = randomUUID();
    const repository = new InMemoryConversationRepository();
    await create(repository, id);
    const life = await lifeOf(repository, id);
    const [line] = [...repository.snapshotLines()];

    const restored = new InMemoryConversationRepository();
    restored.restore(line);
    expect(await lifeOf(restored, id)).toBe(life);
    const known = { version: 0, life: life ?? -1 };
    expect((await restored.getConversationIfChanged(id, known))?.messagesJson).toBeNull();

    const saved = JSON.parse(line) as Record<string, unknown>;
    delete saved.life;
    const old = new InMemoryConversationRepository();
    old.restore(JSON.stringify(saved));
    const drawn = await lifeOf(old, id);
    expect(Number.isSafeInteger(drawn)).toBe(true);
    expect(drawn).not.toBe(life);
  });
});

describe('InMemoryConversationRepository eviction at scale', () => {
  it('yields to the event loop during a large sweep and evicts every expired conversation', async () => {
    const repository = new InMemoryConversationRepository();
    const total = 50_000;
    for (let i = 0; i < total; i++) {
      await repository.createConversation({
        id: randomUUID(),
        now: 1_000,
        maxConversations: total + 1,
      });
    }
    const live = await repository.createConversation({
      id: randomUUID(),
      now: 10_000,
      maxConversations: total + 1,
    });

    let ticksDuringSweep = 0;
    let sweeping = true;
    const tick = (): void => {
      if (sweeping) {
        ticksDuringSweep++;
        setImmediate(tick);
      }
    };
    setImmediate(tick);
    const evicted = await repository.evictInactive(5_000);
    sweeping = false;

    expect(evicted).toBe(total);
    expect((await repository.stats()).conversations).toBe(1);
    expect(await repository.getConversation(live.id)).not.toBeNull();
    // Other work ran between chunks while the sweep was in progress.
    expect(ticksDuringSweep).toBeGreaterThan(5);
  });
});

/** A message to append, by the agent, written at `now`. */
const message = (content: string, now = 1_000, idempotency?: IdempotentWrite) => ({
  id: randomUUID(),
  sender: 'agent' as const,
  content,
  timestamp: now,
  now,
  maxMessages: 1_000,
  idempotency,
});

describe('InMemoryConversationRepository byte budget', () => {
  it('refuses a write past MAX_STORE_BYTES with store_full, touching nothing, and takes writes again once room is freed', async () => {
    // A one-change replay buffer: a deleted message's text is let go of at once (see below).
    const repository = new InMemoryConversationRepository(60_000, 1, 10_000);
    const { id } = await repository.createConversation({
      id: randomUUID(),
      now: 1,
      maxConversations: 10,
    });
    const stored: StoredMessage[] = [];
    for (;;) {
      const result = await repository
        .appendMessage(id, message('x'.repeat(1_000)))
        .catch((error: unknown) => error);
      if (result instanceof StoreError) {
        expect(result.code).toBe('store_full');
        break;
      }
      stored.push(result as StoredMessage);
    }
    // 400 for the conversation, 120 + about 1,190 for each message (its JSON).
    expect(stored).toHaveLength(7);
    const stats = await repository.stats();
    expect(stats).toMatchObject({ conversations: 1, messages: 7, maxBytes: 10_000 });
    expect(stats.bytes).toBeLessThanOrEqual(10_000);
    expect(stats.bytes).toBe(repository.bytes);
    // Nothing stored was touched, and the refused message took no seq.
    const history = await repository.getConversation(id);
    expect(history?.version).toBe(7);
    await expect(
      repository.createConversation({ id: randomUUID(), now: 1, maxConversations: 10 }),
    ).resolves.toBeDefined(); // 400 bytes still fit
    await expect(
      repository.createConversation({ id: randomUUID(), now: 1, maxConversations: 10 }),
    ).rejects.toMatchObject({ code: 'store_full' });

    await repository.deleteMessage(id, stored[0].id, 2_000);
    const next = await repository.appendMessage(id, message('y'.repeat(1_000), 2_000));
    expect(next.seq).toBe(9);
  });

  it('counts a character beyond U+00FF as two bytes, and gives every byte back on eviction', async () => {
    const repository = new InMemoryConversationRepository(60_000, 1_000);
    const { id } = await repository.createConversation({
      id: randomUUID(),
      now: 1,
      maxConversations: 10,
    });
    const empty = repository.bytes;
    await repository.appendMessage(id, message('a'.repeat(500)));
    const latin = repository.bytes - empty;
    await repository.appendMessage(id, message('é'.repeat(500)));
    const stillLatin = repository.bytes - empty - latin;
    await repository.appendMessage(id, message('€'.repeat(500)));
    const wide = repository.bytes - empty - latin - stillLatin;
    expect(stillLatin).toBe(latin);
    expect(wide).toBeGreaterThan(latin + 500);
    await repository.evictInactive(10_000);
    expect(repository.bytes).toBe(0);
  });
});

describe('InMemoryConversationRepository byte budget: what deleted messages leave behind', () => {
  const BIG = 'b'.repeat(10_000);
  const keyOf = (ttlMs = 1_000): IdempotentWrite => ({
    key: randomUUID(),
    fingerprint: randomUUID(),
    ttlMs,
  });
  const conversationIn = async (repository: InMemoryConversationRepository) =>
    (await repository.createConversation({ id: randomUUID(), now: 1_000, maxConversations: 10 }))
      .id;

  it('counts a deleted message until it leaves the replay buffer, which still sends it and then its delete', async () => {
    const repository = new InMemoryConversationRepository(60_000, 3);
    const id = await conversationIn(repository);
    const empty = repository.bytes;
    const big = await repository.appendMessage(id, message(BIG));
    await repository.deleteMessage(id, big.id, 1_000);
    expect(repository.bytes - empty).toBeGreaterThan(BIG.length);
    const replay = await repository.changesAfter(id, 0);
    expect(replay?.changes.map((change) => [change.seq, change.type])).toEqual([
      [1, 'message.created'],
      [2, 'message.deleted'],
    ]);
    expect(replay?.changes[0].data).toContain(BIG);

    await repository.appendMessage(id, message('one'));
    expect(repository.bytes - empty).toBeGreaterThan(BIG.length);
    // The fourth change pushes the message out of the three-change buffer: its bytes go back.
    await repository.appendMessage(id, message('two'));
    expect((await repository.changesAfter(id, 0))?.complete).toBe(false);
    expect(repository.bytes - empty).toBeLessThan(BIG.length);
    await repository.evictInactive(10_000);
    expect(repository.bytes).toBe(0);
  });

  it("counts a keyed post's message for as long as its kept key holds it, across a snapshot too", async () => {
    const repository = new InMemoryConversationRepository(60_000, 1);
    const id = await conversationIn(repository);
    const empty = repository.bytes;
    const idempotency = keyOf(1_000);
    const big = await repository.appendMessage(id, message(BIG, 1_000, idempotency));
    await repository.deleteMessage(id, big.id, 1_100);
    await repository.appendMessage(id, message('pushes the delete out', 1_200));
    // Out of the history and the buffer, yet a retry still gets it: it is held, and counted.
    expect(await repository.appendMessage(id, message(BIG, 1_300, idempotency))).toEqual({
      ...big,
      replayed: true,
    });
    expect(repository.bytes - empty).toBeGreaterThan(BIG.length);
    const restored = new InMemoryConversationRepository(60_000, 1);
    [...repository.snapshotLines()].forEach((line) => restored.restore(line));
    expect(restored.bytes - empty).toBeGreaterThan(BIG.length);

    // Once expired, the next keyed post lets go of the key, and of the message with it.
    for (const store of [repository, restored]) {
      await store.appendMessage(id, message('next', 2_500, keyOf()));
      expect(store.bytes - empty).toBeLessThan(BIG.length);
    }
  });

  it('lets go of expired keys, and what only they held, before it refuses a post for room', async () => {
    const repository = new InMemoryConversationRepository(60_000, 1, 15_000);
    const id = await conversationIn(repository);
    const big = await repository.appendMessage(id, message(BIG, 1_000, keyOf(1_000)));
    await repository.deleteMessage(id, big.id, 1_100);
    // The key still holds the deleted message: no room for another.
    await expect(repository.appendMessage(id, message(BIG, 1_200))).rejects.toMatchObject({
      code: 'store_full',
    });
    // Once it expired, an unkeyed post finds the room.
    const next = await repository.appendMessage(id, message(BIG, 2_000));
    expect(next.seq).toBe(3);
    expect(repository.bytes).toBeLessThanOrEqual(15_000);
  });

  it('counts a live keyed message once, before and after a snapshot', async () => {
    const repository = new InMemoryConversationRepository(60_000, 1);
    const id = await conversationIn(repository);
    const empty = repository.bytes;
    await repository.appendMessage(id, message(BIG, 1_000, keyOf()));
    const restored = new InMemoryConversationRepository(60_000, 1);
    [...repository.snapshotLines()].forEach((line) => restored.restore(line));
    for (const store of [repository, restored]) {
      expect(store.bytes - empty).toBeGreaterThan(BIG.length);
      expect(store.bytes - empty).toBeLessThan(2 * BIG.length);
    }
  });

  /** Every message text the store can still serve: history, replay buffer, kept keys' retries. */
  async function servedText(
    repository: InMemoryConversationRepository,
    id: string,
    keys: { idempotency: IdempotentWrite; expiresAt: number }[],
    now: number,
    replayLimit: number,
  ): Promise<number> {
    const served = new Map<string, string>();
    const history = await repository.getConversation(id);
    for (const stored of JSON.parse(history?.messagesJson.join('') ?? '[]') as StoredMessage[]) {
      served.set(stored.id, JSON.stringify(stored));
    }
    const lastSeq = history?.version ?? 0;
    const replay = await repository.changesAfter(id, Math.max(0, lastSeq - replayLimit));
    for (const change of replay?.changes ?? []) {
      if (change.type === 'message.created') {
        served.set((JSON.parse(change.data) as StoredMessage).id, change.data);
      }
    }
    for (const { idempotency, expiresAt } of keys) {
      if (now < expiresAt) {
        const { replayed, ...stored } = await repository.appendMessage(
          id,
          message('unused', now, idempotency),
        );
        expect(replayed).toBe(true);
        served.set(stored.id, JSON.stringify(stored));
      }
    }
    // eslint-disable-next-line no-control-regex
    const bytes = (text: string) => (/[^\u0000-\u00ff]/.test(text) ? 2 : 1) * text.length;
    return [...served.values()].reduce((sum, text) => sum + bytes(text), 0);
  }

  it('never counts less than the message text it can still serve, through any mix of posts, keyed posts, deletes and read receipts', async () => {
    const REPLAY_LIMIT = 4;
    type Step =
      | { op: 'post'; size: number; wide: boolean; keyed: boolean }
      | { op: 'delete'; pick: number }
      | { op: 'read'; sender: 'customer' | 'agent' }
      | { op: 'wait' };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({
        op: fc.constant('post' as const),
        size: fc.integer({ min: 1, max: 3_000 }),
        wide: fc.boolean(),
        keyed: fc.boolean(),
      }),
      fc.record({ op: fc.constant('delete' as const), pick: fc.nat() }),
      fc.record({
        op: fc.constant('read' as const),
        sender: fc.constantFrom('customer' as const, 'agent' as const),
      }),
      fc.constant({ op: 'wait' as const }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
        const repository = new InMemoryConversationRepository(60_000, REPLAY_LIMIT);
        const id = (
          await repository.createConversation({ id: randomUUID(), now: 0, maxConversations: 1 })
        ).id;
        let now = 0;
        const live: string[] = [];
        const keys: { idempotency: IdempotentWrite; expiresAt: number }[] = [];
        for (const next of steps) {
          now += 10;
          if (next.op === 'post') {
            const idempotency = next.keyed ? keyOf(300) : undefined;
            const content = (next.wide ? '€' : 'x').repeat(next.size);
            const stored = await repository.appendMessage(id, message(content, now, idempotency));
            live.push(stored.id);
            if (idempotency) {
              keys.push({ idempotency, expiresAt: now + idempotency.ttlMs });
            }
          } else if (next.op === 'delete' && live.length > 0) {
            const [messageId] = live.splice(next.pick % live.length, 1);
            await repository.deleteMessage(id, messageId, now);
          } else if (next.op === 'read') {
            const lastSeq = (await repository.changesAfter(id, 0))?.lastSeq ?? 0;
            await repository.markRead(id, { sender: next.sender, seq: lastSeq, now });
          } else {
            now += 200;
          }
          expect(repository.bytes).toBeGreaterThanOrEqual(
            await servedText(repository, id, keys, now, REPLAY_LIMIT),
          );
        }
        await repository.evictInactive(now + 1);
        expect(repository.bytes).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});

describe('InMemoryConversationRepository inbox state in the byte budget and snapshots', () => {
  const fromCustomer = (content: string, now: number) => ({
    ...message(content, now),
    sender: 'customer' as const,
  });
  const create = (repository: InMemoryConversationRepository, now = 1_000) =>
    repository.createConversation({ id: randomUUID(), now, maxConversations: 10 });

  it('refuses a state change that would pass MAX_STORE_BYTES, changing nothing', async () => {
    const repository = new InMemoryConversationRepository(60_000, 1_000, 3_000);
    const { id } = await create(repository);
    const metadata = Object.fromEntries(
      Array.from({ length: 10 }, (_, i) => [`key${i}`, 'v'.repeat(200)] as const),
    );
    const refused = await repository
      .updateState(id, { patch: { metadata }, now: 2_000 })
      .catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'store_full' });
    const history = await repository.getConversation(id);
    expect(history?.version).toBe(0);
    expect(history?.state.metadata).toEqual({});
    expect(repository.bytes).toBeLessThanOrEqual(3_000);
  });

  it('refuses a post whose reopen would not fit, storing neither', async () => {
    const repository = new InMemoryConversationRepository(60_000, 1_000, 2_000);
    const { id } = await create(repository);
    await repository.updateState(id, {
      patch: { status: 'resolved', metadata: { note: 'n'.repeat(100) } },
      now: 1_100,
    });
    // A message that fits alone (its JSON, in one-byte characters, plus the record), with
    // 100 bytes to spare: less than the reopen's change takes.
    const draft = fromCustomer('', 1_200);
    const emptyJson = AppendedMessage.posted(id, draft, 2).json.length;
    const room = 2_000 - repository.bytes;
    const content = 'x'.repeat(room - 100 - MESSAGE_OVERHEAD_BYTES - emptyJson);
    expect(messageBytes(AppendedMessage.posted(id, { ...draft, content }, 2).json)).toBe(
      room - 100,
    );
    const result = await repository
      .appendMessage(id, { ...draft, content })
      .catch((error: unknown) => error);
    expect(result).toMatchObject({ code: 'store_full' });
    const history = await repository.getConversation(id);
    expect(history).toMatchObject({ version: 1, messageCount: 0, state: { status: 'resolved' } });
    // The same message as the agent's (no reopen) fits.
    await expect(
      repository.appendMessage(id, { ...draft, content, sender: 'agent' }),
    ).resolves.toMatchObject({ seq: 2 });
  });

  it('keeps the state in a snapshot, counts the counters again, and wakes restored snoozes', async () => {
    const repository = new InMemoryConversationRepository();
    const { id } = await repository.createConversation({
      id: randomUUID(),
      now: 1_000,
      maxConversations: 10,
      initial: { customer: { externalId: 'u-1', name: 'Ada' }, team: 'billing' },
    });
    await repository.appendMessage(id, fromCustomer('hello', 1_100));
    await repository.appendMessage(id, fromCustomer('anyone?', 1_200));
    await repository.markRead(id, { sender: 'agent', seq: 1, now: 1_300 });
    await repository.updateState(id, {
      patch: {
        status: 'snoozed',
        snoozedUntil: 50_000,
        assignee: 'agent-1',
        metadata: { vip: true },
      },
      now: 1_400,
    });
    const before = await repository.getConversation(id);
    const restored = new InMemoryConversationRepository();
    for (const line of repository.snapshotLines()) {
      restored.restore(line);
    }
    const after = await restored.getConversation(id);
    expect(after?.state).toEqual(before?.state);
    expect(after?.counters).toEqual({ unreadAgent: 1, unreadCustomer: 0, waitingSince: 1_100 });
    expect(after?.counters).toEqual(before?.counters);
    const page = await restored.list({
      statuses: ['snoozed'],
      assignee: 'agent-1',
      sort: '-lastActivityAt',
      limit: 10,
      t0: 100_000,
      now: 2_000,
    });
    expect(page.rows.map((row) => row.id)).toEqual([id]);
    expect(await restored.counts('agent-1')).toMatchObject({ snoozed: 1, assigned: 1 });
    // Not evicted before its wake; woken on time.
    expect(await restored.evictInactive(40_000)).toBe(0);
    expect(await restored.wakeSnoozed(50_000)).toBe(1);
    expect((await restored.getConversation(id))?.state.status).toBe('open');
  });
});
