import { randomUUID } from 'node:crypto';
import { conversationRepositoryContract } from '../../../../test/contracts/conversation-repository.contract';
import { StoreError } from '../../conversation.errors';
import { StoredMessage } from '../../conversation.repository';
import { InMemoryConversationRepository } from './in-memory-conversation.repository';

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

describe('InMemoryConversationRepository byte budget', () => {
  const message = (content: string, now = 1_000) => ({
    id: randomUUID(),
    sender: 'agent' as const,
    content,
    timestamp: now,
    now,
    maxMessages: 1_000,
  });

  it('refuses a write past MAX_STORE_BYTES with store_full, touching nothing, and takes writes again once room is freed', async () => {
    const repository = new InMemoryConversationRepository(60_000, 1_000, 10_000);
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
    // 400 for the conversation, 112 + about 1,190 for each message (its JSON).
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
