import { randomUUID } from 'node:crypto';
import {
  ConversationChange,
  ConversationRepository,
  InboxEvent,
  InboxQuery,
  NewMessage,
  Sender,
} from '../../src/conversations/conversation.repository';
import type { InitialState } from '../../src/conversations/records/conversation.codec';
import type { RepositoryHarness } from './conversation-repository.contract';

const MAX = { maxConversations: 10_000, maxMessages: 1_000 };

/** Waits until `done()` holds, for at most 3 s (events may come from another process). */
async function until(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 3_000;
  while (!done() && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * The inbox part of the ConversationRepository contract (state, claims, counters, snoozes,
 * the list, counts and the feed), run by conversationRepositoryContract on every store.
 */
export function inboxContract(setup: () => Promise<RepositoryHarness>): void {
  describe('the inbox', () => {
    let harness: RepositoryHarness;
    let repository: ConversationRepository;
    let peer: ConversationRepository;

    beforeEach(async () => {
      harness = await setup();
      repository = harness.repository;
      peer = harness.peer ?? repository;
    });

    afterEach(async () => {
      await harness.teardown();
    });

    async function create(now = 1_000, initial?: InitialState): Promise<string> {
      const id = randomUUID();
      await repository.createConversation({ id, now, ...MAX, initial });
      return id;
    }

    function post(id: string, sender: Sender, now: number, content = `${sender} at ${now}`) {
      const input: NewMessage = {
        id: randomUUID(),
        sender,
        content,
        timestamp: now,
        now,
        maxMessages: MAX.maxMessages,
      };
      return repository.appendMessage(id, input);
    }

    async function state(id: string) {
      const history = await repository.getConversation(id);
      if (!history) {
        throw new Error(`no conversation ${id}`);
      }
      return history;
    }

    const query = (over: Partial<InboxQuery> = {}): InboxQuery => ({
      statuses: null,
      sort: '-lastActivityAt',
      limit: 50,
      t0: 1_000_000,
      now: 5_000,
      ...over,
    });

    /** Every id of a whole traversal, page by page. */
    async function walk(over: Partial<InboxQuery>, between?: () => Promise<void>) {
      const ids: string[] = [];
      let after: InboxQuery['after'];
      for (let pages = 0; pages < 1_000; pages++) {
        const page = await repository.list(query({ ...over, after }));
        ids.push(...page.rows.map((row) => row.id));
        if (!page.next) {
          return ids;
        }
        after = page.next;
        await between?.();
      }
      throw new Error('the traversal did not end');
    }

    it('opens conversations as open and unassigned, or in the state the create gives', async () => {
      const plain = await create();
      expect((await state(plain)).state).toEqual({
        status: 'open',
        snoozedUntil: 0,
        assignee: '',
        team: '',
        customer: {},
        metadata: {},
        stateSeq: 0,
      });
      const given = await create(1_000, {
        status: 'pending',
        assignee: 'agent-1',
        team: 'billing',
        customer: { externalId: 'user-1', name: 'Ada' },
        metadata: { plan: 'pro', seats: 3, vip: true },
      });
      expect((await state(given)).state).toMatchObject({
        status: 'pending',
        assignee: 'agent-1',
        team: 'billing',
        customer: { externalId: 'user-1', name: 'Ada' },
        metadata: { plan: 'pro', seats: 3, vip: true },
        stateSeq: 0,
      });
    });

    it('applies a patch as one change with the next seq, told as conversation.updated', async () => {
      const id = await create();
      await post(id, 'customer', 1_100);
      const told: ConversationChange[] = [];
      const watch = repository.watch(id, { change: (c) => told.push(c), gap: () => undefined });
      await watch.ready;
      const updated = await repository.updateState(id, {
        patch: { status: 'pending', assignee: 'agent-1', metadata: { plan: 'pro' } },
        now: 1_200,
      });
      expect(updated).toMatchObject({ seq: 2 });
      const after = await state(id);
      expect(after.version).toBe(2);
      expect(after.lastActivityAt).toBe(1_200);
      expect(after.state).toMatchObject({
        status: 'pending',
        assignee: 'agent-1',
        metadata: { plan: 'pro' },
        stateSeq: 2,
      });
      await until(() => told.length === 1);
      watch.stop();
      expect(told).toEqual([
        {
          conversationId: id,
          seq: 2,
          type: 'conversation.updated',
          data: JSON.stringify({
            seq: 2,
            changed: ['status', 'assignee', 'metadata'],
            status: 'pending',
            snoozedUntil: null,
            assignee: 'agent-1',
            team: null,
            customer: {},
            metadata: { plan: 'pro' },
          }),
        },
      ]);
      // Replayed like any change.
      const replay = await repository.changesAfter(id, 1);
      expect(replay?.changes.map((c) => [c.seq, c.type])).toEqual([[2, 'conversation.updated']]);
    });

    it('takes no seq for a patch that changes nothing', async () => {
      const id = await create(1_000, { assignee: 'agent-1', metadata: { a: 1 } });
      const same = await repository.updateState(id, {
        patch: { assignee: 'agent-1', metadata: { a: 1 }, status: 'open' },
        now: 2_000,
      });
      expect(same).not.toHaveProperty('seq');
      const after = await state(id);
      expect(after.version).toBe(0);
      expect(after.lastActivityAt).toBe(1_000);
    });

    it('merges customer and metadata key by key, and null removes', async () => {
      const id = await create(1_000, {
        customer: { externalId: 'u1', name: 'Ada', email: 'ada@example.com' },
        metadata: { a: 1, b: 'two', c: true },
      });
      await repository.updateState(id, {
        patch: { customer: { email: null, name: 'Ada L.' }, metadata: { b: null, d: 4 } },
        now: 1_100,
      });
      expect((await state(id)).state).toMatchObject({
        customer: { externalId: 'u1', name: 'Ada L.' },
        metadata: { a: 1, c: true, d: 4 },
      });
      await repository.updateState(id, { patch: { metadata: null, team: 'x' }, now: 1_200 });
      expect((await state(id)).state).toMatchObject({ metadata: {}, team: 'x' });
    });

    it('refuses metadata past its limits once merged, changing nothing', async () => {
      const metadata = Object.fromEntries(
        Array.from({ length: 50 }, (_, i) => [`k${i}`, i] as const),
      );
      const id = await create(1_000, { metadata });
      const refused = await repository.updateState(id, {
        patch: { metadata: { one: 'more' } },
        now: 1_100,
      });
      expect(refused).toEqual({
        refused: expect.objectContaining({
          code: 'validation_failed',
          field: 'metadata',
        }) as object,
      });
      const big = await repository.updateState(id, {
        patch: {
          metadata: {
            k0: 'x'.repeat(256),
            k1: 'y'.repeat(256),
            k2: 'z'.repeat(256),
            k3: 'w'.repeat(256),
            k4: 'v'.repeat(256),
            k5: 'u'.repeat(256),
            k6: 't'.repeat(256),
            k7: 's'.repeat(256),
            k8: 'r'.repeat(256),
            k9: 'q'.repeat(256),
            k10: 'p'.repeat(256),
            k11: 'o'.repeat(256),
            k12: 'n'.repeat(256),
            k13: 'm'.repeat(256),
            k14: 'l'.repeat(256),
            k15: 'k'.repeat(256),
          },
        },
        now: 1_100,
      });
      expect(big).toMatchObject({ refused: { code: 'validation_failed', field: 'metadata' } });
      const after = await state(id);
      expect(after.version).toBe(0);
      expect(after.state.metadata).toEqual(metadata);
    });

    it('answers If-Match with precondition_failed only after another state change or life', async () => {
      const id = await create();
      const read = await state(id);
      const etag = { life: read.life, version: read.version };
      await post(id, 'customer', 1_100); // messages never cause a 412
      expect(
        await repository.updateState(id, { patch: { team: 'a' }, ifMatch: etag, now: 1_200 }),
      ).toMatchObject({ seq: 2 });
      expect(
        await repository.updateState(id, { patch: { team: 'b' }, ifMatch: etag, now: 1_300 }),
      ).toEqual({ refused: { code: 'precondition_failed' } });
      expect(
        await repository.updateState(id, {
          patch: { team: 'b' },
          ifMatch: { life: read.life + 1, version: 99 },
          now: 1_300,
        }),
      ).toEqual({ refused: { code: 'precondition_failed' } });
      expect((await state(id)).state.team).toBe('a');
    });

    it('claims only an unassigned conversation, atomically, across instances', async () => {
      const id = await create();
      const told: ConversationChange[] = [];
      const watch = repository.watch(id, { change: (c) => told.push(c), gap: () => undefined });
      await watch.ready;
      const claims = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          (i % 2 ? peer : repository).updateState(id, {
            patch: { assignee: `agent-${i}` },
            claim: true,
            now: 2_000,
          }),
        ),
      );
      const won = claims.filter((claim) => 'seq' in claim && claim.seq !== undefined);
      const lost = claims.filter((claim) => 'refused' in claim);
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(49);
      const winner = (await state(id)).state.assignee;
      for (const claim of lost) {
        expect(claim).toEqual({ refused: { code: 'already_assigned', assignee: winner } });
      }
      await until(() => told.length >= 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      watch.stop();
      expect(told.map((c) => c.type)).toEqual(['conversation.updated']);
      // The same assignee again: no change.
      expect(
        await repository.updateState(id, { patch: { assignee: winner }, claim: true, now: 3_000 }),
      ).not.toHaveProperty('seq');
    });

    it('keeps unread counts and waitingSince through posts, reads and deletes', async () => {
      const id = await create();
      await post(id, 'customer', 1_100);
      const second = await post(id, 'customer', 1_200);
      expect((await state(id)).counters).toEqual({
        unreadAgent: 2,
        unreadCustomer: 0,
        waitingSince: 1_100,
      });
      await repository.markRead(id, { sender: 'agent', seq: 1, now: 1_300 });
      expect((await state(id)).counters).toMatchObject({ unreadAgent: 1 });
      await post(id, 'agent', 1_400);
      expect((await state(id)).counters).toEqual({
        unreadAgent: 1,
        unreadCustomer: 1,
        waitingSince: 0,
      });
      const third = await post(id, 'customer', 1_500);
      expect((await state(id)).counters).toMatchObject({ unreadAgent: 2, waitingSince: 1_500 });
      // Deleting the agent's message: the customer has waited since their first message.
      const agentMessage = (await repository.getPage(id, { limit: 10 }))?.messagesJson ?? '[]';
      const agentId = (JSON.parse(agentMessage) as { id: string; sender: string }[]).find(
        (m) => m.sender === 'agent',
      )?.id as string;
      await repository.deleteMessage(id, agentId, 1_600);
      expect((await state(id)).counters).toEqual({
        unreadAgent: 2,
        unreadCustomer: 0,
        waitingSince: 1_100,
      });
      await repository.deleteMessage(id, second.id, 1_700);
      await repository.deleteMessage(id, third.id, 1_800);
      expect((await state(id)).counters).toEqual({
        unreadAgent: 0,
        unreadCustomer: 0,
        waitingSince: 1_100,
      });
    });

    it('keeps the counters through reads by both sides and deletes of messages of either side', async () => {
      const id = await create(1_000);
      const first = await post(id, 'customer', 1_100);
      await post(id, 'customer', 1_200);
      expect((await state(id)).counters).toEqual({
        unreadCustomer: 0,
        unreadAgent: 2,
        waitingSince: 1_100,
      });
      await repository.deleteMessage(id, first.id, 1_250);
      expect((await state(id)).counters).toEqual({
        unreadCustomer: 0,
        unreadAgent: 1,
        waitingSince: 1_200,
      });
      const reply = await post(id, 'agent', 1_300);
      expect((await state(id)).counters).toEqual({
        unreadCustomer: 1,
        unreadAgent: 1,
        waitingSince: 0,
      });
      await repository.markRead(id, { sender: 'agent', seq: reply.seq, now: 1_400 });
      await post(id, 'customer', 1_500);
      const late = await post(id, 'customer', 1_600);
      expect((await state(id)).counters).toEqual({
        unreadCustomer: 1,
        unreadAgent: 2,
        waitingSince: 1_500,
      });
      await repository.markRead(id, { sender: 'customer', seq: late.seq, now: 1_700 });
      expect((await state(id)).counters).toMatchObject({ unreadCustomer: 0 });
      // The agent's reply deleted: the customer has waited since their first message after the
      // agent message before it (none left): since 1_200.
      await repository.deleteMessage(id, reply.id, 1_800);
      expect((await state(id)).counters).toEqual({
        unreadCustomer: 0,
        unreadAgent: 2,
        waitingSince: 1_200,
      });
    });

    it('reopens a resolved or snoozed conversation on a customer post: N, then N+1', async () => {
      const id = await create();
      await repository.updateState(id, { patch: { status: 'resolved' }, now: 1_100 });
      await post(id, 'agent', 1_200);
      expect((await state(id)).state.status).toBe('resolved');
      const message = await post(id, 'customer', 1_300);
      expect(message.seq).toBe(3);
      const after = await state(id);
      expect(after.version).toBe(4);
      expect(after.state).toMatchObject({ status: 'open', stateSeq: 4 });
      const replay = await repository.changesAfter(id, 2);
      expect(replay?.changes.map((c) => [c.seq, c.type])).toEqual([
        [3, 'message.created'],
        [4, 'conversation.updated'],
      ]);
      expect(JSON.parse(replay?.changes[1].data ?? '{}')).toMatchObject({
        seq: 4,
        changed: ['status'],
        status: 'open',
      });
    });

    it('wakes a snooze when it is due, as a change, and evicts it only a TTL after', async () => {
      const id = await create();
      await repository.updateState(id, {
        patch: { status: 'snoozed', snoozedUntil: 10_000 },
        now: 1_100,
      });
      expect(await repository.wakeSnoozed(9_999)).toBe(0);
      // Idle from its wake on: a cutoff past its activity but before the wake keeps it.
      expect(await repository.evictInactive(5_000)).toBe(0);
      expect(await repository.wakeSnoozed(10_000)).toBe(1);
      const after = await state(id);
      expect(after.state).toMatchObject({ status: 'open', snoozedUntil: 0, stateSeq: 2 });
      expect(await repository.wakeSnoozed(20_000)).toBe(0);
      expect(await repository.evictInactive(10_001)).toBe(1);
    });

    it('lists by last activity, filters, and pages with positions', async () => {
      const a = await create(1_000, { assignee: 'agent-1', team: 'billing' });
      const b = await create(1_001, { status: 'pending', customer: { externalId: 'user-9' } });
      const c = await create(1_002);
      await post(a, 'customer', 1_010);
      await post(c, 'agent', 1_020);
      const ids = (over: Partial<InboxQuery>) => walk(over);
      expect(await ids({})).toEqual([c, a, b]);
      expect(await ids({ statuses: ['open'] })).toEqual([c, a]);
      expect(await ids({ statuses: ['pending', 'resolved'] })).toEqual([b]);
      expect(await ids({ assignee: 'agent-1' })).toEqual([a]);
      expect(await ids({ assignee: '' })).toEqual([c, b]);
      expect(await ids({ assignee: null })).toEqual([a]);
      expect(await ids({ team: 'billing' })).toEqual([a]);
      expect(await ids({ customer: 'user-9' })).toEqual([b]);
      expect(await ids({ unread: 'agent' })).toEqual([a]);
      expect(await ids({ unread: 'customer' })).toEqual([c]);
      expect(await ids({ activeSince: 1_010 })).toEqual([c, a]);
      expect(await ids({ sort: 'waitingSince' })).toEqual([a]);
      expect(await ids({ limit: 1 })).toEqual([c, a, b]);
      const first = await repository.list(query({ limit: 2 }));
      expect(first.rows.map((row) => row.id)).toEqual([c, a]);
      expect(first.next).toEqual({ key: 1_010, id: a });
      expect(first.rows[1]).toMatchObject({
        id: a,
        seq: 1,
        messageCount: 1,
        counters: { unreadAgent: 1, unreadCustomer: 0, waitingSince: 1_010 },
        lastMessage: { sender: 'customer', seq: 1, content: 'customer at 1010' },
      });
    });

    it('examines at most 10 × limit rows a page, and may end short with a position', async () => {
      for (let i = 0; i < 25; i++) {
        await create(1_000 + i);
      }
      const wanted = await create(900, { assignee: 'agent-7', team: 'rare' });
      const page = await repository.list(query({ team: 'rare', statuses: ['open'], limit: 1 }));
      // The team index, if there is one, finds it at once; a scan stops after 10 rows.
      if (page.rows.length === 0) {
        expect(page.next).not.toBeNull();
      }
      expect(await walk({ team: 'rare', statuses: ['open'], limit: 1 })).toEqual([wanted]);
      // No index serves two statuses: the page stops after 10 rows, short, with a position.
      const scan = await repository.list(query({ statuses: ['pending', 'resolved'], limit: 1 }));
      expect(scan.rows).toEqual([]);
      expect(scan.next).not.toBeNull();
      expect(await walk({ statuses: ['pending', 'resolved'], limit: 1 })).toEqual([]);
    });

    it('cuts long last messages to 200 code points', async () => {
      const id = await create();
      await post(id, 'customer', 1_100, '😀'.repeat(300));
      const [row] = (await repository.list(query())).rows;
      expect(row.lastMessage?.content).toBe('😀'.repeat(200));
    });

    it('walks every unchanged conversation once while others move, the moved found by activeSince', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) {
        ids.push(await create(1_000 + i));
      }
      const t0 = 2_000;
      let now = t0;
      const moved = new Set<string>();
      const seen = await walk({ limit: 5, t0 }, async () => {
        // Two posts between pages: one to a conversation not yet returned, one to one returned.
        const target = ids[(now * 7) % ids.length];
        now += 1;
        await post(target, 'customer', now);
        moved.add(target);
      });
      expect(new Set(seen).size).toBe(seen.length);
      const unchanged = ids.filter((id) => !moved.has(id));
      for (const id of unchanged) {
        expect(seen).toContain(id);
      }
      const again = await walk({ activeSince: t0, t0: now + 1 });
      for (const id of moved) {
        expect(again).toContain(id);
      }
    });

    it('walks the queue oldest waiting first, and never returns one twice as it moves', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) {
        const id = await create(1_000);
        await post(id, 'customer', 1_100 + i);
        ids.push(id);
      }
      const t0 = 2_000;
      let now = t0;
      const seen = await walk({ sort: 'waitingSince', limit: 3, t0 }, async () => {
        // The first one returned is answered and waits again: a new waitingSince past T0.
        now += 10;
        await post(ids[0], 'agent', now);
        await post(ids[0], 'customer', now + 1);
      });
      expect(seen.filter((id) => id === ids[0])).toHaveLength(1);
      expect(seen).toEqual(ids);
    });

    it('counts each status, and assigned or not, in all and for one assignee', async () => {
      await create(1_000, { assignee: 'agent-1' });
      await create(1_000, { assignee: 'agent-1', status: 'pending' });
      const r = await create(1_000);
      await repository.updateState(r, { patch: { status: 'resolved' }, now: 1_100 });
      expect(await repository.counts()).toEqual({
        open: 1,
        pending: 1,
        snoozed: 0,
        resolved: 1,
        assigned: 2,
        unassigned: 1,
      });
      // With an assignee: theirs, beside the whole queue's unassigned.
      expect(await repository.counts('agent-1')).toEqual({
        open: 1,
        pending: 1,
        snoozed: 0,
        resolved: 0,
        assigned: 2,
        unassigned: 1,
      });
      expect(await repository.counts('nobody')).toMatchObject({ open: 0, assigned: 0 });
    });

    it('tells the feed of every create, change and eviction, across instances', async () => {
      const events: InboxEvent[] = [];
      const watch = peer.watchInbox({ event: (e) => events.push(e), gap: () => undefined });
      await watch.ready;
      const id = await create(1_000);
      await post(id, 'customer', 1_100);
      await repository.updateState(id, { patch: { assignee: 'agent-2' }, now: 1_200 });
      const mine = () => events.filter((e) => ('row' in e ? e.row.id : e.conversationId) === id);
      // Each is told once its row is read (on Redis, by the watching instance): the updates
      // before the eviction, which could otherwise come first and find the row gone.
      await until(() => mine().length >= 3);
      await repository.evictInactive(10_000);
      await until(() => mine().length >= 4);
      watch.stop();
      expect(mine().map((e) => e.type)).toEqual([
        'conversation.created',
        'conversation.updated',
        'conversation.updated',
        'conversation.evicted',
      ]);
      expect(mine()[2]).toMatchObject({
        row: { id, seq: 2, state: { assignee: 'agent-2' }, counters: { unreadAgent: 1 } },
      });
    });
  });
}
