import { SnoozeWakerService } from '../../src/eviction/snooze-waker.service';
import { API_KEYS, BACKEND_KEY, bearer } from '../utils/credentials';
import { InboxConversation, InboxPage, inboxClient, useListeningApp } from '../utils/inbox';
import { expectProblem, expectProblemCode, FieldError } from '../utils/problem';

const STATUS_RULE = 'status must be one or a comma list of: open, pending, snoozed, resolved';
const ID_RULE = 'must match ^[A-Za-z0-9._:@-]{1,128}$, or be null';

const idsOf = (rows: InboxConversation[]) => rows.map((row) => row.id);

describe('GET /api/conversations', () => {
  describe('filters and sorts (five conversations)', () => {
    const { clock, http } = useListeningApp();
    const inbox = inboxClient(http);
    /** a, b, c, d, e as named below; `at[n]` the time of step n. */
    const c: Record<'a' | 'b' | 'c' | 'd' | 'e', string> = { a: '', b: '', c: '', d: '', e: '' };
    const at: number[] = [];
    const step = () => {
      clock.advance(1_000);
      at.push(clock.time);
    };

    beforeAll(async () => {
      step(); // 0
      c.a = (
        await inbox.create({ customer: { externalId: 'u-a', name: 'Ada' }, team: 'billing' })
      ).id;
      step(); // 1
      c.b = (await inbox.create({ status: 'pending', assignee: 'alice' })).id;
      step(); // 2
      c.c = (await inbox.create({ assignee: 'bob', team: 'sales' })).id;
      step(); // 3
      c.d = (await inbox.create()).id;
      step(); // 4
      await inbox.post(c.b, 'customer', 'b waits first');
      step(); // 5
      await inbox.post(c.a, 'customer', `a waits: ${'x'.repeat(300)}`);
      step(); // 6
      expect((await inbox.patch(c.c, { status: 'resolved' })).status).toBe(200);
      step(); // 7
      expect(
        (await inbox.patch(c.d, { status: 'snoozed', snoozedUntil: clock.time + 3_600_000 }))
          .status,
      ).toBe(200);
      step(); // 8
      c.e = (await inbox.create()).id;
      await inbox.post(c.e, 'agent', 'hello from us');
      step(); // 9
    });

    it('lists every conversation, newest activity first, with the summary of each', async () => {
      const res = await inbox.list();

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const page = res.body as InboxPage;
      expect(idsOf(page.conversations)).toEqual([c.e, c.d, c.c, c.a, c.b]);
      expect(page.nextCursor).toBeNull();
      expect(page.conversations[3]).toEqual({
        id: c.a,
        conversationId: c.a,
        seq: 1,
        status: 'open',
        snoozedUntil: null,
        assignee: null,
        team: 'billing',
        customer: { externalId: 'u-a', name: 'Ada' },
        unread: { customer: 0, agent: 1 },
        waitingSince: at[5],
        createdAt: at[0],
        lastActivityAt: at[5],
        messageCount: 1,
        lastMessage: { sender: 'customer', seq: 1, content: `a waits: ${'x'.repeat(191)}` },
      });
      expect(page.conversations[1]).toMatchObject({
        id: c.d,
        status: 'snoozed',
        snoozedUntil: at[7] + 3_600_000,
        waitingSince: null,
        messageCount: 0,
        lastMessage: null,
      });
      expect(page.conversations[0]).toMatchObject({
        id: c.e,
        unread: { customer: 1, agent: 0 },
        lastMessage: { sender: 'agent', seq: 1, content: 'hello from us' },
      });
    });

    it.each<[string, string[]]>([
      ['status=open', ['e', 'a']],
      ['status=pending', ['b']],
      ['status=snoozed', ['d']],
      ['status=resolved', ['c']],
      ['status=open,pending', ['e', 'a', 'b']],
      ['status=resolved,snoozed,open,pending', ['e', 'd', 'c', 'a', 'b']],
      ['assignee=alice', ['b']],
      ['assignee=nobody', []],
      ['assignee=none', ['e', 'd', 'a']],
      ['assignee=any', ['c', 'b']],
      ['team=billing', ['a']],
      ['team=sales', ['c']],
      ['customer=u-a', ['a']],
      ['customer=u-b', []],
      ['unread=agent', ['a', 'b']],
      ['unread=customer', ['e']],
      ['status=open&unread=agent', ['a']],
      ['assignee=any&team=sales', ['c']],
      ['sort=waitingSince', ['b', 'a']],
      ['sort=waitingSince&status=open&assignee=none', ['a']],
      ['sort=-lastActivityAt', ['e', 'd', 'c', 'a', 'b']],
    ])('?%s', async (query, names) => {
      expect(await inbox.listIds(query)).toEqual(names.map((name) => c[name as 'a']));
    });

    it('?activeSince=<ms>: lastActivityAt at or after it', async () => {
      expect(await inbox.listIds(`activeSince=${at[6]}`)).toEqual([c.e, c.d, c.c]);
      expect(await inbox.listIds(`activeSince=${at[6] + 1}`)).toEqual([c.e, c.d]);
      expect(await inbox.listIds(`activeSince=${at[9]}`)).toEqual([]);
      expect(await inbox.listIds('activeSince=0')).toHaveLength(5);
    });

    it('limit: 1 to 200, default 50', async () => {
      const one = (await inbox.list('limit=1')).body as InboxPage;
      expect(idsOf(one.conversations)).toEqual([c.e]);
      expect(one.nextCursor).toEqual(expect.any(String));
      const all = (await inbox.list('limit=200')).body as InboxPage;
      expect(idsOf(all.conversations)).toHaveLength(5);
      expect(all.nextCursor).toBeNull();
    });

    it('a cursor walk: nextCursor pages on, only limit may change, null ends it', async () => {
      const pages = await inbox.walk('limit=2');
      expect(pages.map(idsOf)).toEqual([[c.e, c.d], [c.c, c.a], [c.b]]);

      const first = (await inbox.list('status=open,pending&limit=1')).body as InboxPage;
      expect(idsOf(first.conversations)).toEqual([c.e]);
      const rest = (await inbox.list(`status=open,pending&limit=5&cursor=${first.nextCursor}`))
        .body as InboxPage;
      expect(idsOf(rest.conversations)).toEqual([c.a, c.b]);
      expect(rest.nextCursor).toBeNull();

      const queue = await inbox.walk('sort=waitingSince&limit=1');
      expect(queue.flat().map((row) => row.id)).toEqual([c.b, c.a]);
    });

    it('400 validation_failed (cursor) for a cursor sent with other filters', async () => {
      const first = (await inbox.list('status=open&limit=1')).body as InboxPage;
      const cursorError = {
        field: 'cursor',
        message:
          'cursor belongs to a list with other filters: send the same filters (only limit may change)',
      };
      for (const query of [
        `cursor=${first.nextCursor}`,
        `status=open,pending&cursor=${first.nextCursor}`,
        `status=open&sort=waitingSince&cursor=${first.nextCursor}`,
        `status=open&assignee=none&cursor=${first.nextCursor}`,
        `status=open&activeSince=0&cursor=${first.nextCursor}`,
      ]) {
        expectProblem(await inbox.list(query), 400, 'validation_failed', [cursorError]);
      }
    });

    it.each([
      'garbage',
      'bm90IG91cnM', // base64url of "not ours"
      Buffer.from(JSON.stringify([1, 0, 'x', 0])).toString('base64url'),
      Buffer.from(JSON.stringify([2, 0, 'x', 0, 'f'])).toString('base64url'),
      '%E2%9C%93',
      'a'.repeat(600),
    ])('400 validation_failed (cursor) for the cursor %j', async (cursor) => {
      expectProblem(await inbox.list(`cursor=${cursor}`), 400, 'validation_failed', [
        { field: 'cursor', message: 'cursor is not one this server gave' },
      ]);
    });

    it.each<[string, FieldError[]]>([
      ['status=closed', [{ field: 'status', message: STATUS_RULE }]],
      ['status=', [{ field: 'status', message: STATUS_RULE }]],
      ['status=open,', [{ field: 'status', message: STATUS_RULE }]],
      ['status=OPEN', [{ field: 'status', message: STATUS_RULE }]],
      ['assignee=a%20b', [{ field: 'assignee', message: `assignee ${ID_RULE}; or none, or any` }]],
      ['assignee=', [{ field: 'assignee', message: `assignee ${ID_RULE}; or none, or any` }]],
      [
        'team=none',
        [
          {
            field: 'team',
            message: 'team must not be "none": it is reserved for the list filters',
          },
        ],
      ],
      [
        'customer=',
        [{ field: 'customer', message: 'customer must be an externalId: 1 to 128 characters' }],
      ],
      ['unread=both', [{ field: 'unread', message: 'unread must be one of: agent, customer' }]],
      ...['-1', 'abc', '1e3', '01', '1.5'].map((value): [string, FieldError[]] => [
        `activeSince=${value}`,
        [
          {
            field: 'activeSince',
            message: 'activeSince must be a time in ms: an integer, 0 or more',
          },
        ],
      ]),
      ...['lastActivityAt', '-waitingSince', 'createdAt'].map((value): [string, FieldError[]] => [
        `sort=${value}`,
        [{ field: 'sort', message: 'sort must be one of: -lastActivityAt, waitingSince' }],
      ]),
      ...['0', '201', '-1', 'abc', '1.5', '10e1', ''].map((value): [string, FieldError[]] => [
        `limit=${value}`,
        [{ field: 'limit', message: 'limit must be an integer from 1 to 200' }],
      ]),
      [
        'status=open&status=pending',
        [{ field: 'status', message: 'status must be given once, as text' }],
      ],
      ['limit=1&limit=2', [{ field: 'limit', message: 'limit must be given once, as text' }]],
      ['cursor=a&cursor=b', [{ field: 'cursor', message: 'cursor must be given once, as text' }]],
      ['page=2', [{ field: 'page', message: 'property page should not exist' }]],
      ['offset=10', [{ field: 'offset', message: 'property offset should not exist' }]],
      [
        'sort=x&limit=0',
        [
          { field: 'sort', message: 'sort must be one of: -lastActivityAt, waitingSince' },
          { field: 'limit', message: 'limit must be an integer from 1 to 200' },
        ],
      ],
    ])('400 validation_failed for ?%s', async (query, errors) => {
      expectProblem(await inbox.list(query), 400, 'validation_failed', errors);
    });
  });

  describe('the filters follow every change at once', () => {
    const { app, clock, http } = useListeningApp();
    const inbox = inboxClient(http);

    it('assignee, team, customer, status, unread and the last message as they change', async () => {
      const { id } = await inbox.create({ customer: { externalId: 'u-old' } });
      const other = (await inbox.create()).id;
      const only = async (query: string) =>
        (await inbox.listIds(query)).filter((one) => one === id || one === other);

      expect(await only('assignee=agent-1')).toEqual([]);
      expect((await inbox.claim(id, 'agent-1')).status).toBe(200);
      expect(await only('assignee=agent-1')).toEqual([id]);
      expect(await only('assignee=none')).toEqual([other]);
      expect((await inbox.patch(id, { assignee: 'agent-2', team: 'sales' })).status).toBe(200);
      expect(await only('assignee=agent-1')).toEqual([]);
      expect(await only('assignee=agent-2&team=sales')).toEqual([id]);

      expect((await inbox.patch(id, { customer: { externalId: 'u-new' } })).status).toBe(200);
      expect(await only('customer=u-old')).toEqual([]);
      expect(await only('customer=u-new')).toEqual([id]);

      clock.advance(1_000);
      const smile = '\u{1F600}';
      const first = await inbox.post(id, 'customer', smile.repeat(250));
      expect(await only('unread=agent')).toEqual([id]);
      const [row] = ((await inbox.list('unread=agent')).body as InboxPage).conversations;
      expect(row.lastMessage).toEqual({
        sender: 'customer',
        seq: first.seq,
        content: smile.repeat(200),
      });
      const second = await inbox.post(id, 'customer', 'and this');
      expect(
        (
          await http()
            .post(`/api/conversations/${id}/read`)
            .send({ sender: 'agent', seq: second.seq })
        ).status,
      ).toBe(200);
      expect(await only('unread=agent')).toEqual([]);
      expect((await http().delete(`/api/conversations/${id}/messages/${second.id}`)).status).toBe(
        200,
      );
      const [afterDelete] = ((await inbox.list('customer=u-new')).body as InboxPage).conversations;
      expect(afterDelete.lastMessage).toMatchObject({ seq: first.seq });

      expect((await inbox.patch(id, { status: 'resolved' })).status).toBe(200);
      expect(await only('status=resolved')).toEqual([id]);
      expect(await only('status=open')).toEqual([other]);

      // A due snooze lists as open before the waker writes its wake (stopped here).
      app().get(SnoozeWakerService).onApplicationShutdown();
      const until = clock.time + 5_000;
      expect((await inbox.patch(other, { status: 'snoozed', snoozedUntil: until })).status).toBe(
        200,
      );
      expect(await only('status=snoozed')).toEqual([other]);
      clock.time = until;
      expect(await only('status=snoozed')).toEqual([]);
      expect(await only('status=open')).toEqual([other]);
      const [woken] = ((await inbox.list('status=open')).body as InboxPage).conversations;
      expect(woken).toMatchObject({ id: other, status: 'open', snoozedUntil: null });
    });

    it('status lists in any order are the same filters: a cursor carries over', async () => {
      for (let i = 0; i < 3; i++) {
        clock.advance(10);
        await inbox.create({ status: 'pending' });
      }
      const first = (await inbox.list('status=pending,open&limit=1')).body as InboxPage;
      const rest = await inbox.list(`status=open,pending&limit=200&cursor=${first.nextCursor}`);
      expect(rest.status).toBe(200);
      const all = await inbox.listIds('status=open,pending&limit=200');
      expect([
        ...idsOf(first.conversations),
        ...idsOf((rest.body as InboxPage).conversations),
      ]).toEqual(all);
    });
  });

  describe('a page examines at most 10 × limit conversations', () => {
    const { clock, http } = useListeningApp();
    const inbox = inboxClient(http);

    it('may end short with a nextCursor; only nextCursor null ends the traversal', async () => {
      const { id: oldest } = await inbox.create();
      await inbox.post(oldest, 'customer');
      expect((await inbox.patch(oldest, { status: 'resolved' })).status).toBe(200);
      for (let i = 0; i < 25; i++) {
        clock.advance(1_000);
        await inbox.post((await inbox.create()).id, 'customer');
      }
      clock.advance(1_000);

      const first = (await inbox.list('unread=agent&status=resolved&limit=1')).body as InboxPage;
      expect(first.conversations).toEqual([]);
      expect(first.nextCursor).toEqual(expect.any(String));

      const pages = await inbox.walk('unread=agent&status=resolved&limit=1');
      expect(pages.flat().map((row) => row.id)).toEqual([oldest]);
      expect(pages.length).toBeGreaterThanOrEqual(3);
    });
  });

  describe('the traversal rule, with posts arriving between pages', () => {
    const { clock, http } = useListeningApp();
    const inbox = inboxClient(http);

    it('-lastActivityAt: never twice, every unchanged one, the moved ones with activeSince=T0', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) {
        clock.advance(1_000);
        ids.push((await inbox.create()).id);
      }
      const newestFirst = [...ids].reverse();
      clock.advance(1_000);
      const t0 = clock.time;
      const moved = new Set<string>();
      const created: string[] = [];

      const pages = await inbox.walk('limit=7', async (page) => {
        clock.advance(100);
        // One already returned, one further down, and a state change further down.
        const returned = newestFirst[page * 7 - 3];
        const ahead = newestFirst[Math.min(page * 7 + 5, 39)];
        const aheadToo = newestFirst[Math.min(page * 7 + 9, 39)];
        await inbox.post(returned, 'customer', `page ${page}`);
        await inbox.post(ahead, 'agent', `page ${page}`);
        clock.advance(100);
        expect((await inbox.patch(aheadToo, { team: `t${page}` })).status).toBe(200);
        created.push((await inbox.create()).id);
        [returned, ahead, aheadToo].forEach((id) => moved.add(id));
      });

      const walked = pages.flat().map((row) => row.id);
      expect(new Set(walked).size).toBe(walked.length);
      const unchanged = newestFirst.filter((id) => !moved.has(id));
      expect(walked.filter((id) => !moved.has(id) && ids.includes(id))).toEqual(unchanged);
      expect(moved.size).toBeGreaterThan(10);
      // What moved was either returned before it moved, or is found since T0.
      const since = (await inbox.walk(`activeSince=${t0}&limit=10`)).flat();
      for (const row of since) {
        expect(row.lastActivityAt).toBeGreaterThanOrEqual(t0);
      }
      const sinceIds = since.map((row) => row.id);
      expect(new Set(sinceIds)).toEqual(new Set([...moved, ...created]));
      expect(new Set([...walked, ...sinceIds])).toEqual(new Set([...ids, ...created]));
    });

    it('sort=waitingSince: never twice, every one that waited throughout, newcomers since T0', async () => {
      const waiting: string[] = [];
      for (let i = 0; i < 20; i++) {
        clock.advance(1_000);
        const { id } = await inbox.create();
        await inbox.post(id, 'customer', `waiting ${i}`);
        waiting.push(id);
      }
      const idle: string[] = [];
      for (let i = 0; i < 5; i++) {
        idle.push((await inbox.create()).id);
      }
      clock.advance(1_000);
      const t0 = clock.time;
      const answered = new Set<string>();
      const started = new Set<string>();

      const pages = await inbox.walk('sort=waitingSince&limit=4', async (page) => {
        clock.advance(100);
        // An agent answers one further down the queue; an idle one starts waiting.
        const next = waiting[Math.min(page * 4 + 2, 19)];
        await inbox.post(next, 'agent', 'answered');
        answered.add(next);
        await inbox.post(idle[page % 5], 'customer', 'now waiting');
        started.add(idle[page % 5]);
      });

      const walked = pages.flat().map((row) => row.id);
      expect(new Set(walked).size).toBe(walked.length);
      // (The test before left some waiting too, before these.)
      expect(walked.filter((id) => waiting.includes(id) && !answered.has(id))).toEqual(
        waiting.filter((id) => !answered.has(id)),
      );
      for (const row of pages.flat()) {
        expect(row.waitingSince).toBeLessThan(t0);
      }
      // A waitingSince traversal leaves out what waits from its own T0 on: list a ms later.
      clock.advance(1);
      const since = await inbox.listIds(`sort=waitingSince&activeSince=${t0}&limit=200`);
      expect(new Set(since)).toEqual(started);
      expect(started.size).toBeGreaterThanOrEqual(3);
    });
  });

  describe('access control (API_KEYS set)', () => {
    const { http } = useListeningApp({ API_KEYS });

    it('an API key lists; a customer token gets 403 forbidden; no credential 401', async () => {
      const withKey = inboxClient(http, bearer(BACKEND_KEY));
      const { id, customerToken } = await withKey.create();
      expect(await withKey.listIds()).toEqual([id]);
      expectProblem(await inboxClient(http, bearer(customerToken)).list(), 403, 'forbidden');
      expectProblemCode(await inboxClient(http).list(), 401, 'unauthorized');
    });
  });
});
