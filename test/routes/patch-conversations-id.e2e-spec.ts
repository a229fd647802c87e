import { UNKNOWN_ID } from '../utils/api';
import { API_KEYS, BACKEND_KEY, bearer } from '../utils/credentials';
import {
  ConversationState,
  ETAG,
  etagSeq,
  eventsOf,
  inboxClient,
  settle,
  useListeningApp,
} from '../utils/inbox';
import { expectProblem, expectProblemCode, FieldError } from '../utils/problem';

const SNOOZE_MAX_MS = 60_000;
const ID_RULE = 'must match ^[A-Za-z0-9._:@-]{1,128}$, or be null';

// The snooze's wake over HTTP (real clock): see "snooze over HTTP" below. A customer post
// that reopens a conversation: post-conversations-id-messages.e2e-spec.ts.
describe('PATCH /api/conversations/{id}', () => {
  describe('open mode (no API_KEYS), SNOOZE_MAX_MS=60000', () => {
    const { clock, http, stream } = useListeningApp({ SNOOZE_MAX_MS: String(SNOOZE_MAX_MS) });
    const inbox = inboxClient(http);

    it('sets every field: 200 with the state, activity, the next seq and its ETag', async () => {
      const { id } = await inbox.create();
      const before = await inbox.get(id);
      const createdAt = (before.body as { createdAt: number }).createdAt;
      const life = /^"(\d+)\./.exec(before.headers.etag as string)?.[1];
      clock.advance(1_000);

      const res = await inbox.patch(id, {
        status: 'pending',
        assignee: 'agent-1',
        team: 'billing',
        customer: { email: 'ada@example.com', externalId: 'u-1', name: 'Ada' },
        metadata: { plan: 'pro', seats: 3, vip: true },
      });

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.headers.etag).toBe(`"${life}.1"`);
      expect(res.body).toEqual({
        id,
        conversationId: id,
        seq: 1,
        status: 'pending',
        snoozedUntil: null,
        assignee: 'agent-1',
        team: 'billing',
        customer: { externalId: 'u-1', name: 'Ada', email: 'ada@example.com' },
        unread: { customer: 0, agent: 0 },
        waitingSince: null,
        metadata: { plan: 'pro', seats: 3, vip: true },
        createdAt,
        lastActivityAt: clock.time,
        messageCount: 0,
      });
      const read = await inbox.get(id);
      expect(read.headers.etag).toBe(res.headers.etag);
      expect(read.body).toMatchObject({
        status: 'pending',
        assignee: 'agent-1',
        team: 'billing',
        customer: { externalId: 'u-1', name: 'Ada', email: 'ada@example.com' },
        metadata: { plan: 'pro', seats: 3, vip: true },
        lastActivityAt: clock.time,
      });
    });

    it('merges: absent fields stay, null removes a key of customer or metadata, or a field', async () => {
      const { id } = await inbox.create({
        assignee: 'agent-1',
        team: 'billing',
        customer: { externalId: 'u-1', name: 'Ada', email: 'ada@example.com' },
        metadata: { plan: 'pro', seats: 3 },
      });

      const merged = await inbox.patch(id, {
        customer: { email: null, name: 'Ada L.' },
        metadata: { seats: null, region: 'eu' },
      });
      expect(merged.status).toBe(200);
      expect(merged.body).toMatchObject({
        seq: 1,
        assignee: 'agent-1',
        team: 'billing',
        customer: { externalId: 'u-1', name: 'Ada L.' },
        metadata: { plan: 'pro', region: 'eu' },
      });
      expect((merged.body as ConversationState).customer).toEqual({
        externalId: 'u-1',
        name: 'Ada L.',
      });
      expect((merged.body as ConversationState).metadata).toEqual({ plan: 'pro', region: 'eu' });

      const removed = await inbox.patch(id, {
        assignee: null,
        team: null,
        customer: null,
        metadata: null,
      });
      expect(removed.status).toBe(200);
      expect(removed.body).toMatchObject({
        seq: 2,
        status: 'open',
        assignee: null,
        team: null,
        customer: {},
        metadata: {},
      });
      expect((await inbox.get(id)).body).toMatchObject({
        assignee: null,
        team: null,
        customer: {},
        metadata: {},
      });
    });

    it('snoozes with snoozedUntil, and any other status clears it', async () => {
      const { id } = await inbox.create();
      const until = clock.time + 30_000;

      const snoozed = await inbox.patch(id, { status: 'snoozed', snoozedUntil: until });
      expect(snoozed.status).toBe(200);
      expect(snoozed.body).toMatchObject({ status: 'snoozed', snoozedUntil: until });
      expect((await inbox.get(id)).body).toMatchObject({ status: 'snoozed', snoozedUntil: until });

      const later = await inbox.patch(id, { snoozedUntil: until + 1_000 });
      expect(later.status).toBe(200);
      expect(later.body).toMatchObject({ status: 'snoozed', snoozedUntil: until + 1_000 });

      const resolved = await inbox.patch(id, { status: 'resolved' });
      expect(resolved.status).toBe(200);
      expect(resolved.body).toMatchObject({ status: 'resolved', snoozedUntil: null });
    });

    it('goes out as one conversation.updated on the conversation stream, naming what changed', async () => {
      const { id } = await inbox.create();
      await inbox.post(id, 'customer', 'hello');
      const events = await stream(`/api/conversations/${id}/events`);
      expect(events.status).toBe(200);

      const res = await inbox.patch(id, { status: 'pending', metadata: { plan: 'pro' } });
      expect(res.status).toBe(200);
      await events.waitForEvents(1);
      await settle();
      expect(eventsOf(events)).toEqual([
        {
          event: 'conversation.updated',
          id: '2',
          data: {
            seq: 2,
            changed: ['status', 'metadata'],
            status: 'pending',
            snoozedUntil: null,
            assignee: null,
            team: null,
            customer: {},
            metadata: { plan: 'pro' },
          },
        },
      ]);
      events.close();
    });

    it('a PATCH that changes nothing: 200, the same ETag and seq, no event, no activity', async () => {
      const { id } = await inbox.create({ assignee: 'agent-1', metadata: { plan: 'pro' } });
      const first = await inbox.patch(id, { status: 'pending', team: 'billing' });
      expect(first.status).toBe(200);
      const events = await stream(`/api/conversations/${id}/events`);
      clock.advance(5_000);

      for (const body of [
        {},
        { status: 'pending' },
        { assignee: 'agent-1', team: 'billing', metadata: { plan: 'pro' } },
        { customer: { name: null }, metadata: { absent: null }, snoozedUntil: null },
      ]) {
        const again = await inbox.patch(id, body);
        expect(again.status).toBe(200);
        expect(again.headers.etag).toBe(first.headers.etag);
        expect(again.body).toEqual(first.body);
      }

      await settle();
      expect(events.events).toEqual([]);
      // No seq was taken: the next message has the next one.
      expect((await inbox.post(id, 'agent')).seq).toBe(2);
      events.close();
    });

    describe('If-Match', () => {
      it('absent, `*` or the current ETag: the change is made', async () => {
        const { id } = await inbox.create();
        expect((await inbox.patch(id, { team: 'a' })).status).toBe(200);
        expect((await inbox.patch(id, { team: 'b' }, { 'If-Match': '*' })).status).toBe(200);

        const current = await inbox.etag(id);
        const res = await inbox.patch(id, { team: 'c' }, { 'If-Match': current });

        expect(res.status).toBe(200);
        expect(res.headers.etag).toMatch(ETAG);
        expect(etagSeq(res.headers.etag as string)).toBe(etagSeq(current) + 1);
      });

      it('412 precondition_failed after another PATCH, and nothing changed', async () => {
        const { id } = await inbox.create();
        const read = await inbox.etag(id);
        expect((await inbox.patch(id, { assignee: 'agent-1' })).status).toBe(200);
        const before = await inbox.get(id);
        clock.advance(1_000);

        const res = await inbox.patch(id, { assignee: 'agent-2' }, { 'If-Match': read });

        expectProblem(res, 412, 'precondition_failed');
        const after = await inbox.get(id);
        expect(after.body).toEqual(before.body);
        expect(after.headers.etag).toBe(before.headers.etag);
      });

      it('412 after a claim, and for the ETag of another conversation (another life)', async () => {
        const { id } = await inbox.create();
        const other = await inbox.create();
        const read = await inbox.etag(id);
        expect((await inbox.claim(id, 'agent-1')).status).toBe(200);

        expectProblem(
          await inbox.patch(id, { status: 'resolved' }, { 'If-Match': read }),
          412,
          'precondition_failed',
        );
        expectProblem(
          await inbox.patch(other.id, { status: 'resolved' }, { 'If-Match': read }),
          412,
          'precondition_failed',
        );
      });

      it('still succeeds after messages and reads alone (they are not state changes)', async () => {
        const { id } = await inbox.create();
        const read = await inbox.etag(id);
        await inbox.post(id, 'customer', 'one');
        await inbox.post(id, 'agent', 'two');
        const marked = await http()
          .post(`/api/conversations/${id}/read`)
          .send({ sender: 'agent', seq: 1 });
        expect(marked.status).toBe(200);

        const res = await inbox.patch(id, { status: 'resolved' }, { 'If-Match': read });

        expect(res.status).toBe(200);
        expect(res.body).toMatchObject({ seq: 4, status: 'resolved', messageCount: 2 });
      });

      it.each(['abc', '"1"', '"a.b"', '1.2', '"1.2", "1.3"', 'W/"1.2'])(
        '400 validation_failed for the malformed If-Match %j',
        async (ifMatch) => {
          const { id } = await inbox.create();
          const before = await inbox.get(id);

          const res = await inbox.patch(id, { status: 'resolved' }, { 'If-Match': ifMatch });

          expectProblem(res, 400, 'validation_failed', [
            {
              field: 'If-Match',
              message: 'If-Match must be an ETag this server gave: "<life>.<seq>"',
            },
          ]);
          expect((await inbox.get(id)).body).toEqual(before.body);
        },
      );
    });

    describe('bad input: 400 validation_failed naming the field, and nothing changed', () => {
      const soon = () => clock.time + 10_000;
      const cases: [string, () => unknown, FieldError[]][] = [
        [
          'an unknown status',
          () => ({ status: 'closed' }),
          [{ field: 'status', message: 'status must be one of: open, pending, snoozed, resolved' }],
        ],
        [
          'snoozedUntil in the past',
          () => ({ status: 'snoozed', snoozedUntil: clock.time - 1 }),
          [{ field: 'snoozedUntil', message: 'snoozedUntil must be in the future' }],
        ],
        [
          'snoozedUntil now',
          () => ({ status: 'snoozed', snoozedUntil: clock.time }),
          [{ field: 'snoozedUntil', message: 'snoozedUntil must be in the future' }],
        ],
        [
          'snoozedUntil beyond SNOOZE_MAX_MS',
          () => ({ status: 'snoozed', snoozedUntil: clock.time + SNOOZE_MAX_MS + 1 }),
          [
            {
              field: 'snoozedUntil',
              message: `snoozedUntil must be at most ${SNOOZE_MAX_MS} ms ahead (SNOOZE_MAX_MS)`,
            },
          ],
        ],
        [
          'snoozedUntil not an integer',
          () => ({ status: 'snoozed', snoozedUntil: '2030-01-01' }),
          [{ field: 'snoozedUntil', message: 'snoozedUntil must be an integer time in ms' }],
        ],
        [
          'snoozed without snoozedUntil',
          () => ({ status: 'snoozed' }),
          [{ field: 'snoozedUntil', message: 'status snoozed needs snoozedUntil' }],
        ],
        [
          'snoozedUntil with another status',
          () => ({ status: 'pending', snoozedUntil: soon() }),
          [{ field: 'snoozedUntil', message: 'snoozedUntil goes with status snoozed only' }],
        ],
        [
          'snoozedUntil alone on a conversation that is not snoozed',
          () => ({ snoozedUntil: soon() }),
          [{ field: 'snoozedUntil', message: 'snoozedUntil goes with status snoozed only' }],
        ],
        [
          'an assignee with a space',
          () => ({ assignee: 'agent 1' }),
          [{ field: 'assignee', message: `assignee ${ID_RULE}` }],
        ],
        [
          'an assignee of 129 characters',
          () => ({ assignee: 'a'.repeat(129) }),
          [{ field: 'assignee', message: `assignee ${ID_RULE}` }],
        ],
        [
          'an empty assignee',
          () => ({ assignee: '' }),
          [{ field: 'assignee', message: `assignee ${ID_RULE}` }],
        ],
        [
          'an assignee that is a number',
          () => ({ assignee: 7 }),
          [{ field: 'assignee', message: `assignee ${ID_RULE}` }],
        ],
        ...(['none', 'any'] as const).map((word): [string, () => unknown, FieldError[]] => [
          `the reserved assignee "${word}"`,
          () => ({ assignee: word }),
          [
            {
              field: 'assignee',
              message: `assignee must not be "${word}": it is reserved for the list filters`,
            },
          ],
        ]),
        [
          'the reserved team "any"',
          () => ({ team: 'any' }),
          [
            {
              field: 'team',
              message: 'team must not be "any": it is reserved for the list filters',
            },
          ],
        ],
        [
          'a metadata key with a space',
          () => ({ metadata: { 'bad key': 1 } }),
          [
            {
              field: 'metadata.bad key',
              message: 'metadata keys must match ^[A-Za-z0-9_.-]{1,64}$',
            },
          ],
        ],
        [
          'a metadata key __proto__ (a merge would drop it silently)',
          () => JSON.parse('{"metadata":{"__proto__":"x","constructor":"y"}}') as unknown,
          [{ field: 'metadata.__proto__', message: 'metadata keys must not be __proto__' }],
        ],
        [
          'a metadata value that is an object',
          () => ({ metadata: { plan: { tier: 1 } } }),
          [
            {
              field: 'metadata.plan',
              message:
                'metadata.plan must be a string, a finite number or a boolean (null removes it)',
            },
          ],
        ],
        [
          'a metadata string of 257 characters',
          () => ({ metadata: { note: 'x'.repeat(257) } }),
          [
            {
              field: 'metadata.note',
              message: 'metadata.note must be at most 256 characters of valid Unicode',
            },
          ],
        ],
        [
          'metadata that is an array',
          () => ({ metadata: ['a'] }),
          [{ field: 'metadata', message: 'metadata must be a flat object' }],
        ],
        [
          'metadata of 51 keys in one patch',
          () => ({
            metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i])),
          }),
          [{ field: 'metadata', message: 'metadata holds at most 50 keys' }],
        ],
        [
          'an unknown customer field',
          () => ({ customer: { phone: '+100' } }),
          [{ field: 'customer.phone', message: 'property customer.phone should not exist' }],
        ],
        [
          'a customer email that is not one',
          () => ({ customer: { email: 'ada' } }),
          [{ field: 'customer.email', message: 'customer.email must be an email address' }],
        ],
        [
          'an unknown field',
          () => ({ title: 'x' }),
          [{ field: 'title', message: 'property title should not exist' }],
        ],
        [
          'an unknown field beside good ones',
          () => ({ status: 'resolved', priority: 1 }),
          [{ field: 'priority', message: 'property priority should not exist' }],
        ],
        [
          'a body that is an array',
          () => [{ status: 'resolved' }],
          [{ field: '(body)', message: 'the body must be a JSON object' }],
        ],
      ];

      it.each(cases)('%s', async (_name, body, errors) => {
        const { id } = await inbox.create({ metadata: { plan: 'pro' } });
        const before = await inbox.get(id);
        clock.advance(1_000);

        const res = await inbox.patch(id, body());

        expectProblem(res, 400, 'validation_failed', errors);
        const after = await inbox.get(id);
        expect(after.body).toEqual(before.body);
        expect(after.headers.etag).toBe(before.headers.etag);
      });

      it.each(['"resolved"', '42', 'null', ''])('a body that is %j', async (text) => {
        const { id } = await inbox.create();
        const before = await inbox.get(id);
        const req = http().patch(`/api/conversations/${id}`);
        const res = await (text ? req.set('Content-Type', 'application/json').send(text) : req);
        expectProblem(res, 400, 'validation_failed', [
          { field: '(body)', message: 'the body must be a JSON object' },
        ]);
        expect((await inbox.get(id)).body).toEqual(before.body);
      });

      it('metadata over 50 keys once merged: metadata, and nothing changed', async () => {
        const keys = (from: number, count: number) =>
          Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${from + i}`, i]));
        const { id } = await inbox.create({ metadata: keys(0, 30) });
        const before = await inbox.get(id);

        const res = await inbox.patch(id, { metadata: keys(30, 21) });

        expectProblem(res, 400, 'validation_failed', [
          { field: 'metadata', message: 'metadata holds at most 50 keys (it would hold 51)' },
        ]);
        expect((await inbox.get(id)).body).toEqual(before.body);
        // Exactly 50, or removing some while adding: fine.
        expect((await inbox.patch(id, { metadata: keys(30, 20) })).status).toBe(200);
        expect((await inbox.patch(id, { metadata: { ...keys(50, 1), k0: null } })).status).toBe(
          200,
        );
      });

      it('metadata over 4 KB as compact JSON once merged: metadata, and nothing changed', async () => {
        const big = (prefix: string) =>
          Object.fromEntries(
            Array.from({ length: 10 }, (_, i) => [`${prefix}${i}`, 'x'.repeat(200)]),
          );
        const { id } = await inbox.create({ metadata: big('a') });
        const before = await inbox.get(id);

        const res = await inbox.patch(id, { metadata: big('b') });

        expect(res.status).toBe(400);
        expect(res.body).toMatchObject({
          code: 'validation_failed',
          errors: [
            {
              field: 'metadata',
              message: expect.stringMatching(
                /^metadata holds at most 4096 bytes as compact JSON \(it would hold \d+\)$/,
              ),
            },
          ],
        });
        expect((await inbox.get(id)).body).toEqual(before.body);
      });
    });

    it('404 conversation_not_found for an unknown id', async () => {
      expectProblem(
        await inbox.patch(UNKNOWN_ID, { status: 'resolved' }),
        404,
        'conversation_not_found',
      );
    });

    // Route order: PATCH is declared before the conversation routes, with the same id rule.
    it.each(['not-a-uuid', 'counts', 'events', '123'])(
      '404 conversation_not_found for the non-UUID id %j',
      async (id) => {
        expectProblem(await inbox.patch(id, { status: 'resolved' }), 404, 'conversation_not_found');
      },
    );
  });

  describe('snooze over HTTP (real clock)', () => {
    jest.setTimeout(15_000);
    const { http, stream } = useListeningApp({}, { realClock: true });
    const inbox = inboxClient(http);

    it('reads open from snoozedUntil on; the wake goes out as conversation.updated within 1 s', async () => {
      const { id } = await inbox.create();
      await inbox.post(id, 'customer', 'hello');
      const events = await stream(`/api/conversations/${id}/events`);
      const until = Date.now() + 1_500;

      const snoozed = await inbox.patch(id, { status: 'snoozed', snoozedUntil: until });
      expect(snoozed.status).toBe(200);
      expect((await inbox.get(id)).body).toMatchObject({ status: 'snoozed', snoozedUntil: until });
      await events.waitForEvents(1);

      await settle(until - Date.now() + 5);
      expect((await inbox.get(id)).body).toMatchObject({ status: 'open', snoozedUntil: null });
      await events.waitForEvents(2, Math.max(until + 1_000 - Date.now(), 1));
      expect(Date.now()).toBeLessThanOrEqual(until + 1_000 + 50);
      expect(eventsOf(events, 1)).toEqual([
        {
          event: 'conversation.updated',
          id: '3',
          data: {
            seq: 3,
            changed: ['status', 'snoozedUntil'],
            status: 'open',
            snoozedUntil: null,
            assignee: null,
            team: null,
            customer: {},
            metadata: {},
          },
        },
      ]);
      expect((await inbox.get(id)).headers.etag).toMatch(/\.3"$/);
      events.close();
    });
  });

  describe('access control (API_KEYS set)', () => {
    const { http } = useListeningApp({ API_KEYS });
    const withKey = inboxClient(http, bearer(BACKEND_KEY));

    it('an API key changes the state', async () => {
      const { id } = await withKey.create();
      const res = await withKey.patch(id, { status: 'pending' });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: 'pending', seq: 1 });
    });

    it("a customer token gets 403 forbidden, even for its own conversation's status", async () => {
      const { id, customerToken } = await withKey.create();
      const res = await inboxClient(http, bearer(customerToken)).patch(id, { status: 'resolved' });
      expectProblem(res, 403, 'forbidden');
      expect((await withKey.get(id)).body).toMatchObject({ status: 'open' });
    });

    it('no credential: 401 unauthorized', async () => {
      const { id } = await withKey.create();
      const res = await inboxClient(http).patch(id, { status: 'resolved' });
      expectProblemCode(res, 401, 'unauthorized');
      expect((await withKey.get(id)).body).toMatchObject({ status: 'open' });
    });
  });
});
