import { randomUUID } from 'node:crypto';
import { StoreError } from '../../src/common/errors/store-error';
import { initialState } from '../../src/conversations/records/conversation-state';
import { inboxContract } from './conversation-inbox.contract';
import {
  ChangeListener,
  ConversationHistory,
  ConversationRepository,
  NewMessage,
  Sender,
  StoredMessage,
  StoreStats,
  TypingSignal,
} from '../../src/conversations/conversation.repository';

export interface RepositoryHarness {
  repository: ConversationRepository;
  /**
   * Another process's handle on the same store (another instance's connection), where the
   * implementation has such a thing: concurrent calls then race as they do in production.
   */
  peer?: ConversationRepository;
  /** Releases what setup took (processes, connections, keys). */
  teardown(): Promise<void>;
}

/** A harness of two handles on one store (see RepositoryHarness.peer), both closed after. */
export function withPeer<Repository extends ConversationRepository>(
  repository: Repository,
  peer: Repository,
  close: (repository: Repository) => Promise<void>,
): RepositoryHarness {
  return {
    repository,
    peer,
    teardown: async () => {
      await close(repository);
      await close(peer);
    },
  };
}

const LIMITS = { maxConversations: 1_000, maxMessages: 1_000 };

function draft(overrides: Partial<NewMessage> = {}): NewMessage {
  return {
    id: randomUUID(),
    sender: 'customer' as Sender,
    content: 'hello',
    timestamp: 1_000,
    now: 1_000,
    maxMessages: LIMITS.maxMessages,
    ...overrides,
  };
}

/** The history's messages, parsed from the JSON text the store returns. */
function messagesOf(history: ConversationHistory | null): StoredMessage[] {
  expect(history).not.toBeNull();
  return JSON.parse(history?.messagesJson.join('') ?? 'null') as StoredMessage[];
}

/** Waits until `done()` holds, for at most 2 s (changes may come from another process). */
async function until(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (!done() && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The HistoryVersion a history was read at, or the version given at its life. */
function at(history: ConversationHistory | null, version = history?.version ?? -1) {
  return { life: history?.life ?? -1, version };
}

/** The counts every store keeps (the in-memory one adds its byte budget). */
const counts = ({ conversations, messages }: StoreStats) => ({ conversations, messages });

async function expectStoreError(operation: Promise<unknown>, code: string): Promise<void> {
  const error = await operation.then(
    () => undefined,
    (rejection: unknown) => rejection,
  );
  expect(error).toBeInstanceOf(StoreError);
  expect((error as StoreError).code).toBe(code);
}

/**
 * What every implementation of the ConversationRepository port must do. Each
 * implementation's spec calls this with its own setup.
 */
export function conversationRepositoryContract(
  name: string,
  setup: () => Promise<RepositoryHarness>,
): void {
  describe(`ConversationRepository contract: ${name}`, () => {
    let harness: RepositoryHarness;
    let repository: ConversationRepository;

    beforeEach(async () => {
      harness = await setup();
      repository = harness.repository;
    });

    afterEach(async () => {
      await harness.teardown();
    });

    async function create(now = 1_000, maxConversations = LIMITS.maxConversations) {
      return repository.createConversation({ id: randomUUID(), now, maxConversations });
    }

    it('creates an empty conversation and reads it back', async () => {
      const id = randomUUID();
      const summary = await repository.createConversation({
        id,
        now: 1_234,
        maxConversations: 10,
      });
      expect(summary).toEqual({ id, createdAt: 1_234, lastActivityAt: 1_234, messageCount: 0 });
      expect(await repository.getConversation(id)).toEqual({
        ...summary,
        lastRead: { customer: 0, agent: 0 },
        life: expect.any(Number) as number,
        version: 0,
        state: initialState(),
        counters: { unreadCustomer: 0, unreadAgent: 0, waitingSince: 0 },
        messagesJson: ['[]'],
      });
      expect((await repository.stats()).conversations).toBe(1);
    });

    it('answers null for an unknown conversation', async () => {
      expect(await repository.getConversation(randomUUID())).toBeNull();
    });

    it('stores a message with the next seq and returns it as stored', async () => {
      const { id } = await create();
      const input = draft({
        sender: 'agent',
        content: 'Grüße 👋🏽 مرحبا',
        timestamp: 900,
        now: 1_100,
      });
      const stored = await repository.appendMessage(id, input);
      expect(stored).toEqual({
        id: input.id,
        conversationId: id,
        sender: 'agent',
        content: 'Grüße 👋🏽 مرحبا',
        timestamp: 900,
        seq: 1,
        createdAt: 1_100,
      });
      const history = await repository.getConversation(id);
      expect(messagesOf(history)).toEqual([stored]);
      // Serialized with the fields in wire order.
      expect(history?.messagesJson.join('')).toBe(JSON.stringify([stored]));
      expect(history?.messageCount).toBe(1);
      expect(history?.lastActivityAt).toBe(1_100);
    });

    it('numbers messages 1..N and keeps them in timestamp order, ties by seq', async () => {
      const { id } = await create();
      const timestamps = [50, 10, 30, 10, 50, 20];
      for (const timestamp of timestamps) {
        await repository.appendMessage(id, draft({ timestamp, content: `t${timestamp}` }));
      }
      const history = await repository.getConversation(id);
      expect(messagesOf(history).map((m) => [m.timestamp, m.seq])).toEqual([
        [10, 2],
        [10, 4],
        [20, 6],
        [30, 3],
        [50, 1],
        [50, 5],
      ]);
    });

    it('keeps seq unique and gap-free under concurrent appends', async () => {
      const { id } = await create();
      const stored = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          repository.appendMessage(id, draft({ content: `m${i}` })),
        ),
      );
      expect(stored.map((m) => m.seq).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
      expect((await repository.getConversation(id))?.messageCount).toBe(200);
    });

    it('refuses a message for an unknown conversation', async () => {
      await expectStoreError(
        repository.appendMessage(randomUUID(), draft()),
        'conversation_not_found',
      );
    });

    it('refuses a message once the conversation holds maxMessages, storing nothing', async () => {
      const { id } = await create();
      await repository.appendMessage(id, draft({ maxMessages: 2 }));
      await repository.appendMessage(id, draft({ maxMessages: 2 }));
      await expectStoreError(
        repository.appendMessage(id, draft({ maxMessages: 2 })),
        'conversation_full',
      );
      const history = await repository.getConversation(id);
      expect(messagesOf(history).map((m) => m.seq)).toEqual([1, 2]);
    });

    it('refuses a conversation once it holds maxConversations', async () => {
      await create(1_000, 2);
      await create(1_000, 2);
      await expectStoreError(create(1_000, 2), 'capacity_exceeded');
      expect((await repository.stats()).conversations).toBe(2);
    });

    it('deletes a message, giving the delete the next seq', async () => {
      const { id } = await create();
      const first = await repository.appendMessage(id, draft());
      const second = await repository.appendMessage(id, draft());
      expect(await repository.deleteMessage(id, first.id, 2_000)).toEqual({
        messageId: first.id,
        seq: 3,
      });
      const after = await repository.appendMessage(id, draft());
      expect(after.seq).toBe(4);
      const history = await repository.getConversation(id);
      expect(messagesOf(history).map((m) => m.id)).toEqual([second.id, after.id]);
      expect(history?.messageCount).toBe(2);
      expect(history?.lastActivityAt).toBe(2_000);
    });

    it('refuses to delete a message twice, or from an unknown conversation', async () => {
      const { id } = await create();
      const message = await repository.appendMessage(id, draft());
      await repository.deleteMessage(id, message.id, 1_500);
      await expectStoreError(repository.deleteMessage(id, message.id, 1_600), 'message_not_found');
      await expectStoreError(
        repository.deleteMessage(randomUUID(), message.id, 1_600),
        'conversation_not_found',
      );
      // A failed delete takes no seq.
      expect((await repository.appendMessage(id, draft())).seq).toBe(3);
    });

    it('does not find a message through another conversation', async () => {
      const a = await create();
      const b = await create();
      const message = await repository.appendMessage(a.id, draft());
      await expectStoreError(
        repository.deleteMessage(b.id, message.id, 1_500),
        'message_not_found',
      );
      expect((await repository.getConversation(a.id))?.messageCount).toBe(1);
    });

    it('counts posts and deletes as activity, reads not', async () => {
      const { id } = await create(1_000);
      await repository.appendMessage(id, draft({ now: 5_000 }));
      await repository.getConversation(id);
      expect((await repository.getConversation(id))?.lastActivityAt).toBe(5_000);
    });

    it('evicts exactly the conversations inactive before the cutoff', async () => {
      const old1 = await create(1_000);
      const old2 = await create(2_000);
      const revived = await create(1_500);
      await repository.appendMessage(revived.id, draft({ now: 9_000 }));
      const fresh = await create(8_000);

      expect(await repository.evictInactive(5_000)).toBe(2);
      expect(await repository.getConversation(old1.id)).toBeNull();
      expect(await repository.getConversation(old2.id)).toBeNull();
      expect(await repository.getConversation(revived.id)).not.toBeNull();
      expect(await repository.getConversation(fresh.id)).not.toBeNull();
      expect((await repository.stats()).conversations).toBe(2);
      // Idempotent: a second sweep with the same cutoff finds nothing.
      expect(await repository.evictInactive(5_000)).toBe(0);
      await expectStoreError(repository.appendMessage(old1.id, draft()), 'conversation_not_found');
    });

    it('counts conversations and messages through posts, deletes and evictions', async () => {
      expect(counts(await repository.stats())).toEqual({ conversations: 0, messages: 0 });
      const old = await create(1_000);
      const kept = await create(1_000);
      await repository.appendMessage(old.id, draft());
      await repository.appendMessage(old.id, draft());
      const first = await repository.appendMessage(kept.id, draft({ now: 9_000 }));
      await repository.appendMessage(kept.id, draft({ now: 9_000 }));
      await repository.deleteMessage(kept.id, first.id, 9_000);
      expect(counts(await repository.stats())).toEqual({ conversations: 2, messages: 3 });

      await repository.evictInactive(5_000);
      expect(counts(await repository.stats())).toEqual({ conversations: 1, messages: 1 });
    });

    it('pages messages in seq order after or before a cursor, or the newest', async () => {
      expect(await repository.getPage(randomUUID(), { limit: 5 })).toBeNull();
      const { id } = await create();
      expect(await repository.getPage(id, { limit: 5 })).toEqual({
        messagesJson: '[]',
        hasMore: false,
      });
      const posted: StoredMessage[] = [];
      for (let i = 0; i < 12; i++) {
        // Timestamps out of seq order: pages follow seq, not timestamp.
        posted.push(await repository.appendMessage(id, draft({ timestamp: 5_000 - i })));
      }
      await repository.deleteMessage(id, posted[4].id, 1_000); // seq 5 gone; the delete took 13
      const seqs = async (query: { after?: number; before?: number; limit: number }) => {
        const page = await repository.getPage(id, query);
        return {
          seqs: (JSON.parse(page?.messagesJson ?? 'null') as StoredMessage[]).map((m) => m.seq),
          hasMore: page?.hasMore,
        };
      };

      expect(await seqs({ limit: 3 })).toEqual({ seqs: [10, 11, 12], hasMore: true });
      expect(await seqs({ limit: 20 })).toEqual({
        seqs: [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12],
        hasMore: false,
      });
      expect(await seqs({ after: 3, limit: 3 })).toEqual({ seqs: [4, 6, 7], hasMore: true });
      expect(await seqs({ after: 9, limit: 3 })).toEqual({ seqs: [10, 11, 12], hasMore: false });
      expect(await seqs({ after: 12, limit: 3 })).toEqual({ seqs: [], hasMore: false });
      expect(await seqs({ before: 7, limit: 2 })).toEqual({ seqs: [4, 6], hasMore: true });
      expect(await seqs({ before: 3, limit: 5 })).toEqual({ seqs: [1, 2], hasMore: false });
      expect(await seqs({ before: 1, limit: 5 })).toEqual({ seqs: [], hasMore: false });
      const page = await repository.getPage(id, { after: 0, limit: 1 });
      expect(JSON.parse(page?.messagesJson ?? '')).toEqual([posted[0]]);
    });

    it('applies a keyed post once: a retry gets the stored message, another request is refused', async () => {
      const { id } = await create();
      const idempotency = { key: `k-${randomUUID()}`, fingerprint: 'fp-1', ttlMs: 1_000 };
      const first = await repository.appendMessage(id, draft({ idempotency, content: 'once' }));
      expect(first.replayed).toBeFalsy();
      const retry = await repository.appendMessage(
        id,
        draft({ idempotency, content: 'once', now: 1_500 }),
      );
      expect(retry).toEqual({ ...first, replayed: true });
      await expectStoreError(
        repository.appendMessage(
          id,
          draft({ idempotency: { ...idempotency, fingerprint: 'fp-2' } }),
        ),
        'idempotency_key_reused',
      );
      expect(messagesOf(await repository.getConversation(id))).toEqual([first]);
      // The same key in another conversation is another key: scoped to its conversation.
      const other = await create();
      const elsewhere = await repository.appendMessage(other.id, draft({ idempotency }));
      expect(elsewhere.replayed).toBeFalsy();
    });

    it('replays a keyed post after its message was deleted and the conversation filled up, until the key expires', async () => {
      const { id } = await create();
      const idempotency = { key: `k-${randomUUID()}`, fingerprint: 'fp', ttlMs: 1_000 };
      const first = await repository.appendMessage(id, draft({ idempotency, maxMessages: 1 }));
      await repository.deleteMessage(id, first.id, 1_100);
      await repository.appendMessage(id, draft({ now: 1_200, maxMessages: 1 }));
      const retry = await repository.appendMessage(
        id,
        draft({ idempotency, now: 1_999, maxMessages: 1 }),
      );
      expect(retry).toEqual({ ...first, replayed: true });
      // Expired (now 2_000 = 1_000 + ttlMs): the key is free again, and the limits apply.
      await expectStoreError(
        repository.appendMessage(id, draft({ idempotency, now: 2_000, maxMessages: 1 })),
        'conversation_full',
      );
      const fresh = await repository.appendMessage(id, draft({ idempotency, now: 2_000 }));
      expect(fresh.replayed).toBeFalsy();
      expect(fresh.seq).toBe(4);
    });

    it('applies a keyed create once: a retry gets the conversation as made, with the new token, even at capacity', async () => {
      const id = randomUUID();
      const idempotency = { key: `k-${randomUUID()}`, fingerprint: 'fp-create', ttlMs: 1_000 };
      const input = { id, now: 1_000, maxConversations: LIMITS.maxConversations, idempotency };
      const made = await repository.createConversation({
        ...input,
        customerToken: { hash: 'hash-1', anonymous: true },
      });
      expect(made).toEqual({ id, createdAt: 1_000, lastActivityAt: 1_000, messageCount: 0 });
      await repository.appendMessage(id, draft({ now: 1_100 }));
      const statsBefore = await repository.stats();

      const retry = await repository.createConversation({
        ...input,
        now: 1_200,
        maxConversations: statsBefore.conversations, // full: a retry is still answered
        customerToken: { hash: 'hash-2', anonymous: false },
      });
      expect(retry).toEqual({ ...made, replayed: true });
      expect(await repository.customerToken(id)).toEqual({ hash: 'hash-2', anonymous: false });
      expect((await repository.getConversation(id))?.messageCount).toBe(1);
      expect((await repository.stats()).conversations).toBe(statsBefore.conversations);

      await expectStoreError(
        repository.createConversation({
          ...input,
          idempotency: { ...idempotency, fingerprint: 'fp-other' },
        }),
        'idempotency_key_reused',
      );
      expect(await repository.customerToken(id)).toEqual({ hash: 'hash-2', anonymous: false });
    });

    it('answers twin keyed creates at capacity only with a conversation that stands', async () => {
      const peer = harness.peer ?? repository;
      const trials = 60;
      const unstood: string[] = [];
      for (let trial = 0; trial < trials; trial++) {
        // One place left: the twins race for it, one through each handle.
        const { conversations } = await repository.stats();
        const id = randomUUID();
        const idempotency = { key: `k-${id}`, fingerprint: 'fp-twin', ttlMs: 1_000 };
        const input = { id, now: 1_000, maxConversations: conversations + 1, idempotency };
        const answers = await Promise.allSettled([
          repository.createConversation({
            ...input,
            customerToken: { hash: 'hash-a', anonymous: true },
          }),
          peer.createConversation({ ...input, customerToken: { hash: 'hash-b', anonymous: true } }),
        ]);
        for (const answer of answers) {
          if (answer.status === 'rejected') {
            expect((answer.reason as StoreError).code).toBe('capacity_exceeded');
          }
        }
        const answered = answers.filter((answer) => answer.status === 'fulfilled').length;
        if (answered > 0 && (await repository.getConversation(id)) === null) {
          unstood.push(`trial ${trial}: ${answered} answer(s), no conversation`);
        }
      }
      expect(unstood).toEqual([]);
      // The count is what stands: one conversation per trial.
      expect((await repository.stats()).conversations).toBe(trials);
    });

    it('keeps a customer token hash with the conversation and forgets it on eviction', async () => {
      const id = randomUUID();
      await repository.createConversation({
        id,
        now: 1_000,
        maxConversations: LIMITS.maxConversations,
        customerToken: { hash: 'hash-1', anonymous: false },
      });
      expect(await repository.customerToken(id)).toEqual({ hash: 'hash-1', anonymous: false });
      expect(await repository.customerToken((await create()).id)).toBeNull();
      expect(await repository.customerToken(randomUUID())).toBeNull();

      await repository.evictInactive(2_000);
      expect(await repository.customerToken(id)).toBeNull();
    });

    it('keeps whether a customer token was minted without an API key (anonymous)', async () => {
      const made = async (anonymous: boolean) => {
        const id = randomUUID();
        await repository.createConversation({
          id,
          now: 1_000,
          maxConversations: LIMITS.maxConversations,
          customerToken: { hash: `hash-${id}`, anonymous },
        });
        return repository.customerToken(id);
      };
      expect(await made(true)).toMatchObject({ anonymous: true });
      expect(await made(false)).toMatchObject({ anonymous: false });
    });

    it('gives the changes after a seq, each with its seq, type and event JSON', async () => {
      expect(await repository.changesAfter(randomUUID(), 0)).toBeNull();
      const { id } = await create();
      expect(await repository.changesAfter(id, 0)).toEqual({
        lastSeq: 0,
        complete: true,
        changes: [],
      });
      const first = await repository.appendMessage(id, draft({ content: 'one' }));
      const second = await repository.appendMessage(id, draft({ content: 'two' }));
      await repository.deleteMessage(id, first.id, 1_000);

      const after = await repository.changesAfter(id, 1);
      expect(after).toEqual({
        lastSeq: 3,
        complete: true,
        changes: [
          { conversationId: id, seq: 2, type: 'message.created', data: expect.any(String) },
          {
            conversationId: id,
            seq: 3,
            type: 'message.deleted',
            data: JSON.stringify({ messageId: first.id, seq: 3 }),
          },
        ],
      });
      expect(JSON.parse(after?.changes[0].data ?? '')).toEqual(second);
      expect(await repository.changesAfter(id, 3)).toEqual({
        lastSeq: 3,
        complete: true,
        changes: [],
      });
    });

    /** A listener that notes each change as `<seq> <type>`, and each gap. */
    function noting(seen: string[]): ChangeListener {
      return {
        change: (change) => seen.push(`${change.seq} ${change.type}`),
        gap: () => seen.push('gap'),
      };
    }

    it('tells watchers of each change in seq order, until they stop', async () => {
      const { id } = await create();
      const seen: string[] = [];
      const watch = repository.watch(id, noting(seen));
      await watch.ready;
      const message = await repository.appendMessage(id, draft());
      await repository.deleteMessage(id, message.id, 1_000);
      await until(() => seen.length >= 2);
      expect(seen).toEqual(['1 message.created', '2 message.deleted']);

      watch.stop();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await repository.appendMessage(id, draft());
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(seen).toHaveLength(2);
    });

    it('has a watch in effect when it is ready: a change made right after is told', async () => {
      // Each round on a conversation no one watched yet, the case the first watch of a
      // process meets; and a second watch made while the first is on its way.
      for (let round = 0; round < 5; round++) {
        const { id } = await create();
        const first: string[] = [];
        const second: string[] = [];
        const watches = [repository.watch(id, noting(first)), repository.watch(id, noting(second))];
        await watches[1].ready;
        await repository.appendMessage(id, draft());
        await watches[0].ready;
        await repository.appendMessage(id, draft());
        await until(() => first.length >= 2 && second.length >= 2);
        expect(first).toEqual(['1 message.created', '2 message.created']);
        expect(second).toEqual(first);
        watches.forEach((watch) => watch.stop());
      }
    });

    it('tells watchers when their conversation is evicted', async () => {
      const { id } = await create(1_000);
      const seen: string[] = [];
      const watch = repository.watch(id, noting(seen));
      await watch.ready;
      await repository.evictInactive(2_000);
      await until(() => seen.length >= 1);
      expect(seen).toEqual([expect.stringMatching(/^\d+ conversation\.evicted$/)]);
      watch.stop();
    });

    it('frees capacity when it evicts', async () => {
      await create(1_000, 1);
      await expectStoreError(create(1_000, 1), 'capacity_exceeded');
      expect(await repository.evictInactive(2_000)).toBe(1);
      await expect(create(3_000, 1)).resolves.toMatchObject({ messageCount: 0 });
    });

    it('returns a long history in pieces of a few kilobytes that join to the whole array', async () => {
      const { id } = await create();
      const sent: StoredMessage[] = [];
      for (let i = 0; i < 300; i++) {
        sent.push(
          await repository.appendMessage(id, draft({ content: `${i} ${'é'.repeat(150)}` })),
        );
      }
      const history = await repository.getConversation(id);
      expect(history?.messagesJson.length).toBeGreaterThan(2);
      for (const piece of history?.messagesJson ?? []) {
        expect(piece.length).toBeLessThanOrEqual(64 * 1024);
      }
      expect(messagesOf(history)).toEqual(sent);
      expect(history?.version).toBe(300);
    });

    it('moves a read horizon with the next seq, as activity, and tells it as a change', async () => {
      const { id } = await create(1_000);
      const seen: string[] = [];
      const watch = repository.watch(id, noting(seen));
      await watch.ready;
      await repository.appendMessage(id, draft({ now: 2_000 }));
      await repository.appendMessage(id, draft({ sender: 'agent', now: 2_000 }));

      expect(await repository.markRead(id, { sender: 'agent', seq: 1, now: 3_000 })).toEqual({
        lastRead: { customer: 0, agent: 1 },
        seq: 3,
      });
      expect(await repository.markRead(id, { sender: 'customer', seq: 2, now: 4_000 })).toEqual({
        lastRead: { customer: 2, agent: 1 },
        seq: 4,
      });
      // At or below the horizon: nothing changes, no seq, no activity.
      expect(await repository.markRead(id, { sender: 'agent', seq: 1, now: 9_000 })).toEqual({
        lastRead: { customer: 2, agent: 1 },
      });
      expect(await repository.markRead(id, { sender: 'customer', seq: 2, now: 9_000 })).toEqual({
        lastRead: { customer: 2, agent: 1 },
      });
      await expectStoreError(
        repository.markRead(id, { sender: 'agent', seq: 5, now: 9_000 }),
        'seq_beyond_last',
      );
      await expectStoreError(
        repository.markRead(randomUUID(), { sender: 'agent', seq: 0, now: 9_000 }),
        'conversation_not_found',
      );

      const history = await repository.getConversation(id);
      expect(history).toMatchObject({
        lastRead: { customer: 2, agent: 1 },
        lastActivityAt: 4_000,
        version: 4,
        messageCount: 2,
      });
      const unchanged = await repository.getConversationIfChanged(id, at(history, 4));
      expect(unchanged?.messagesJson).toBeNull();
      expect(unchanged?.lastRead).toEqual({ customer: 2, agent: 1 });

      expect((await repository.changesAfter(id, 2))?.changes).toEqual([
        {
          conversationId: id,
          seq: 3,
          type: 'conversation.read',
          data: JSON.stringify({ sender: 'agent', seq: 1 }),
        },
        {
          conversationId: id,
          seq: 4,
          type: 'conversation.read',
          data: JSON.stringify({ sender: 'customer', seq: 2 }),
        },
      ]);
      await until(() => seen.length >= 4);
      expect(seen).toEqual([
        '1 message.created',
        '2 message.created',
        '3 conversation.read',
        '4 conversation.read',
      ]);
      // The next message follows the read.
      expect((await repository.appendMessage(id, draft({ now: 5_000 }))).seq).toBe(5);
      watch.stop();
    });

    it('takes a read receipt down to the last standing message at or below it', async () => {
      const { id } = await create(1_000);
      await repository.appendMessage(id, draft({ now: 2_000 })); // 1
      await repository.appendMessage(id, draft({ sender: 'agent', now: 2_000 })); // 2
      await repository.markRead(id, { sender: 'agent', seq: 1, now: 3_000 }); // 3
      const receipts: [Sender, number, object][] = [
        // Seq 3 is the agent's receipt: the customer has read up to message 2.
        ['customer', 3, { lastRead: { customer: 2, agent: 1 }, seq: 4 }],
        // Seq 4 comes down to message 2: above the agent's horizon, so it moves once...
        ['agent', 4, { lastRead: { customer: 2, agent: 2 }, seq: 5 }],
        // ...and an acknowledgement of that receipt changes nothing: no seq, no activity.
        ['customer', 5, { lastRead: { customer: 2, agent: 2 } }],
      ];
      for (const [sender, seq, answer] of receipts) {
        expect(await repository.markRead(id, { sender, seq, now: 4_000 + seq })).toEqual(answer);
      }
      // A deleted message does not count: seq 6 was deleted by seq 7.
      const deleted = await repository.appendMessage(id, draft({ now: 6_000 }));
      expect(deleted.seq).toBe(6);
      await repository.deleteMessage(id, deleted.id, 7_000);
      expect(await repository.markRead(id, { sender: 'agent', seq: 7, now: 9_000 })).toEqual({
        lastRead: { customer: 2, agent: 2 },
      });
      // No message at or below it at all: nothing to move to.
      const empty = await create(1_000);
      await repository.appendMessage(empty.id, draft({ now: 2_000 }));
      await repository.markRead(empty.id, { sender: 'agent', seq: 1, now: 3_000 });
      const gone = await repository.appendMessage(empty.id, draft({ now: 2_000 }));
      await repository.deleteMessage(empty.id, gone.id, 3_000);
      const first = JSON.parse((await repository.getConversation(empty.id))!.messagesJson.join(''));
      await repository.deleteMessage(empty.id, (first as StoredMessage[])[0].id, 3_000);
      expect(
        await repository.markRead(empty.id, { sender: 'customer', seq: 5, now: 9_000 }),
      ).toEqual({ lastRead: { customer: 0, agent: 1 } });
      const history = await repository.getConversation(id);
      expect(history).toMatchObject({ version: 7, lastActivityAt: 7_000 });
    });

    it('settles two sides that each acknowledge the latest event id: receipts of receipts take no seq', async () => {
      const { id } = await create(1_000);
      await repository.appendMessage(id, draft({ now: 2_000 }));
      await repository.appendMessage(id, draft({ sender: 'agent', now: 2_000 }));
      /** 20 rounds in which each side acknowledges the latest seq; the seqs they took. */
      async function acknowledgeLatest(latest: number, order: Sender[]): Promise<number[]> {
        const moves: number[] = [];
        for (let round = 0; round < 20; round++) {
          for (const sender of order) {
            const state = await repository.markRead(id, { sender, seq: latest, now: 3_000 });
            if (state.seq !== undefined) {
              moves.push(state.seq);
              latest = state.seq;
            }
          }
        }
        return moves;
      }
      // One move per side for the new messages, then nothing, however long it goes on.
      const moves = await acknowledgeLatest(2, ['customer', 'agent']);
      expect(moves.length).toBeLessThanOrEqual(2);
      expect((await repository.changesAfter(id, 0))?.lastSeq).toBe(2 + moves.length);
      // A new message moves each side once more, and it settles again.
      const next = await repository.appendMessage(id, draft({ now: 4_000 }));
      expect((await acknowledgeLatest(next.seq, ['agent', 'customer'])).length).toBeLessThanOrEqual(
        2,
      );
    });

    it('tells typing signals to every watcher, stores nothing and takes no seq', async () => {
      const { id } = await create(1_000);
      const signals: TypingSignal[] = [];
      const watch = repository.watch(id, {
        change: () => undefined,
        gap: () => undefined,
        typing: (signal) => signals.push(signal),
      });
      await watch.ready;
      const signal = { conversationId: id, sender: 'agent' as const, typing: true, expiresAt: 9 };
      await repository.sendTyping(signal);
      await repository.sendTyping({ ...signal, sender: 'customer', typing: false });
      await until(() => signals.length >= 2);
      expect(signals).toEqual([signal, { ...signal, sender: 'customer', typing: false }]);
      const history = await repository.getConversation(id);
      expect(history).toMatchObject({ version: 0, lastActivityAt: 1_000 });
      expect(await repository.changesAfter(id, 0)).toEqual({
        lastSeq: 0,
        complete: true,
        changes: [],
      });
      await expectStoreError(
        repository.sendTyping({ ...signal, conversationId: randomUUID() }),
        'conversation_not_found',
      );
      watch.stop();
    });

    it('leaves the messages out only while the known version is current', async () => {
      const { id } = await create();
      await repository.appendMessage(id, draft({ content: 'one' }));
      const first = await repository.getConversation(id);
      expect(first?.version).toBe(1);

      const unchanged = await repository.getConversationIfChanged(id, at(first, 1));
      expect(unchanged).toEqual({ ...first, messagesJson: null });

      const second = await repository.appendMessage(id, draft({ content: 'two', now: 2_000 }));
      const changed = await repository.getConversationIfChanged(id, at(first, 1));
      expect(changed?.version).toBe(2);
      expect(changed?.life).toBe(first?.life);
      expect(changed?.messageCount).toBe(2);
      expect(messagesOf(changed as ConversationHistory).map((m) => m.id)).toContain(second.id);

      await repository.deleteMessage(id, second.id, 3_000);
      expect(
        (await repository.getConversationIfChanged(id, at(first, 2)))?.messagesJson,
      ).not.toBeNull();
      expect(await repository.getConversationIfChanged(randomUUID(), at(null, 0))).toBeNull();
    });

    it('never takes a conversation made again with the same id for its earlier life', async () => {
      // A keyed create derives its id from the key, so after an eviction the same create makes
      // the same id again, and its seqs start over. A copy of the earlier life's history (a
      // worker's or a Redis client's) must not pass for the new one at the same seq.
      const id = randomUUID();
      const idempotency = { key: `k-${randomUUID()}`, fingerprint: 'fp', ttlMs: 1_000 };
      const input = { id, now: 1_000, maxConversations: LIMITS.maxConversations, idempotency };
      await repository.createConversation(input);
      await repository.appendMessage(id, draft({ content: 'first life', now: 1_000 }));
      const earlier = await repository.getConversation(id);
      expect(messagesOf(earlier).map((m) => m.content)).toEqual(['first life']);

      expect(await repository.evictInactive(2_000)).toBe(1);
      const again = await repository.createConversation({ ...input, now: 3_000 });
      expect(again.replayed).toBeFalsy();
      await repository.appendMessage(id, draft({ content: 'second life', now: 3_000 }));

      const later = await repository.getConversation(id);
      expect(later?.version).toBe(earlier?.version);
      expect(later?.life).not.toBe(earlier?.life);
      expect(messagesOf(later).map((m) => m.content)).toEqual(['second life']);
      const asked = await repository.getConversationIfChanged(id, at(earlier));
      expect(messagesOf(asked as ConversationHistory).map((m) => m.content)).toEqual([
        'second life',
      ]);
    });

    inboxContract(setup);
  });
}
