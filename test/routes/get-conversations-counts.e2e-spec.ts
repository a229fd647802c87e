import { SnoozeWakerService } from '../../src/eviction/snooze-waker.service';
import { API_KEYS, BACKEND_KEY, bearer } from '../utils/credentials';
import { Counts, inboxClient, useListeningApp } from '../utils/inbox';
import { expectProblem, expectProblemCode } from '../utils/problem';

const NONE: Counts = { open: 0, pending: 0, snoozed: 0, resolved: 0, assigned: 0, unassigned: 0 };

describe('GET /api/conversations/counts', () => {
  describe('open mode (no API_KEYS)', () => {
    const { app, clock, http } = useListeningApp();
    const inbox = inboxClient(http);
    const counts = async (query = ''): Promise<Counts> => {
      const res = await http().get(`/api/conversations/counts${query ? `?${query}` : ''}`);
      expect(res.status).toBe(200);
      return res.body as Counts;
    };
    let a: string;
    let snoozedUntil: number;

    it('an empty store: every count 0 (and it reaches its handler, not the {id} route)', async () => {
      const res = await http().get('/api/conversations/counts');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual(NONE);
    });

    it('counts by status, and assigned or not, of every status', async () => {
      a = (await inbox.create()).id;
      await inbox.create({ status: 'pending', assignee: 'alice' });
      const c = await inbox.create({ assignee: 'bob' });
      expect((await inbox.patch(c.id, { status: 'resolved' })).status).toBe(200);
      const d = await inbox.create({ assignee: 'alice' });
      snoozedUntil = clock.time + 60_000;
      expect((await inbox.patch(d.id, { status: 'snoozed', snoozedUntil })).status).toBe(200);
      await inbox.create({ assignee: 'alice' });

      expect(await counts()).toEqual({
        open: 2,
        pending: 1,
        snoozed: 1,
        resolved: 1,
        assigned: 4,
        unassigned: 1,
      });
    });

    it("?assignee=<id>: theirs, beside the whole queue's unassigned", async () => {
      expect(await counts('assignee=alice')).toEqual({
        open: 1,
        pending: 1,
        snoozed: 1,
        resolved: 0,
        assigned: 3,
        unassigned: 1,
      });
      expect(await counts('assignee=bob')).toEqual({
        ...NONE,
        resolved: 1,
        assigned: 1,
        unassigned: 1,
      });
      expect(await counts('assignee=nobody')).toEqual({ ...NONE, unassigned: 1 });
    });

    it('follows claims and patches at once', async () => {
      expect((await inbox.claim(a, 'bob')).status).toBe(200);
      expect(await counts('assignee=bob')).toEqual({
        ...NONE,
        open: 1,
        resolved: 1,
        assigned: 2,
        unassigned: 0,
      });
      expect(await counts()).toMatchObject({ open: 2, assigned: 5, unassigned: 0 });
      expect((await inbox.patch(a, { assignee: null, status: 'pending' })).status).toBe(200);
      expect(await counts()).toMatchObject({ open: 1, pending: 2, assigned: 4, unassigned: 1 });
    });

    // Counts read the stored status: the route has the store write the wakes that are due
    // first, so a due snooze counts as open from snoozedUntil on, as GET and the list read it.
    it('a due snooze counts as open from snoozedUntil on', async () => {
      // The waker stopped, so that what is read is what answers read before it writes.
      app().get(SnoozeWakerService).onApplicationShutdown();
      clock.time = snoozedUntil;
      expect(await inbox.listIds('status=snoozed')).toEqual([]);
      expect(await counts()).toMatchObject({ open: 2, snoozed: 0 });
      expect(await counts('assignee=alice')).toMatchObject({ open: 2, snoozed: 0 });
    });

    it.each([
      [
        'assignee=none',
        'assignee',
        'assignee must not be "none": it is reserved for the list filters',
      ],
      [
        'assignee=any',
        'assignee',
        'assignee must not be "any": it is reserved for the list filters',
      ],
      ['assignee=a%20b', 'assignee', 'assignee must match ^[A-Za-z0-9._:@-]{1,128}$, or be null'],
      ['assignee=a&assignee=b', 'assignee', 'assignee must be given once, as text'],
      ['status=open', 'status', 'property status should not exist'],
    ])('400 validation_failed for ?%s', async (query, field, message) => {
      const res = await http().get(`/api/conversations/counts?${query}`);
      expectProblem(res, 400, 'validation_failed', [{ field, message }]);
    });
  });

  describe('access control (API_KEYS set)', () => {
    const { http } = useListeningApp({ API_KEYS });

    it('an API key counts; a customer token gets 403 forbidden; no credential 401', async () => {
      const withKey = inboxClient(http, bearer(BACKEND_KEY));
      const { customerToken } = await withKey.create();
      const res = await http().get('/api/conversations/counts').set(bearer(BACKEND_KEY));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ...NONE, open: 1, unassigned: 1 });
      expectProblem(
        await http().get('/api/conversations/counts').set(bearer(customerToken)),
        403,
        'forbidden',
      );
      expectProblemCode(await http().get('/api/conversations/counts'), 401, 'unauthorized');
    });
  });
});
