import request from 'supertest';
import { UNKNOWN_ID } from '../utils/api';
import { API_KEYS, BACKEND_KEY, bearer } from '../utils/credentials';
import { eventsOf, inboxClient, settle, useListeningApp } from '../utils/inbox';
import { expectProblem, expectProblemCode, UUID_V4 } from '../utils/problem';

const ID_RULE = 'assignee must match ^[A-Za-z0-9._:@-]{1,128}$, or be null';

/** The exact 409 already_assigned answer, naming the holder. */
function expectAlreadyAssigned(res: request.Response, holder: string): void {
  expect(res.status).toBe(409);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.headers['x-request-id']).toMatch(UUID_V4);
  expect(res.body).toEqual({
    type: 'urn:chat-server:problem:already-assigned',
    title: 'Conflict',
    status: 409,
    detail: `The conversation is assigned to ${holder}.`,
    code: 'already_assigned',
    assignee: holder,
    requestId: res.headers['x-request-id'],
  });
}

describe('POST /api/conversations/{id}/claim', () => {
  describe('open mode (no API_KEYS)', () => {
    const { clock, http, stream } = useListeningApp();
    const inbox = inboxClient(http);

    it('assigns an unassigned conversation: 200, the state, the next seq, its ETag, one event', async () => {
      const { id } = await inbox.create({ team: 'billing' });
      await inbox.post(id, 'customer', 'help');
      const events = await stream(`/api/conversations/${id}/events`);
      clock.advance(1_000);

      const res = await inbox.claim(id, 'agent-1');

      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        id,
        seq: 2,
        status: 'open',
        assignee: 'agent-1',
        team: 'billing',
        lastActivityAt: clock.time,
        messageCount: 1,
      });
      expect(res.headers.etag).toMatch(/^"\d+\.2"$/);
      expect((await inbox.get(id)).body).toMatchObject({ assignee: 'agent-1' });
      await events.waitForEvents(1);
      expect(eventsOf(events)).toEqual([
        {
          event: 'conversation.updated',
          id: '2',
          data: expect.objectContaining({ seq: 2, changed: ['assignee'], assignee: 'agent-1' }),
        },
      ]);
      events.close();
    });

    it('the same assignee again: 200, no change, no seq taken', async () => {
      const { id } = await inbox.create();
      const first = await inbox.claim(id, 'agent-1');
      expect(first.status).toBe(200);
      clock.advance(1_000);

      const again = await inbox.claim(id, 'agent-1');

      expect(again.status).toBe(200);
      expect(again.headers.etag).toBe(first.headers.etag);
      expect(again.body).toEqual(first.body);
      expect((await inbox.post(id, 'agent')).seq).toBe(2);
    });

    it('another assignee: 409 already_assigned with the holder, and nothing changed', async () => {
      const { id } = await inbox.create();
      expect((await inbox.claim(id, 'agent-1')).status).toBe(200);
      const before = await inbox.get(id);
      clock.advance(1_000);

      expectAlreadyAssigned(await inbox.claim(id, 'agent-2'), 'agent-1');

      const after = await inbox.get(id);
      expect(after.body).toEqual(before.body);
      expect(after.headers.etag).toBe(before.headers.etag);
    });

    it('a conversation assigned at create or by PATCH is held; unassigned by PATCH it can be claimed', async () => {
      const { id } = await inbox.create({ assignee: 'agent-9' });
      expectAlreadyAssigned(await inbox.claim(id, 'agent-1'), 'agent-9');

      expect((await inbox.patch(id, { assignee: null })).status).toBe(200);
      const res = await inbox.claim(id, 'agent-1');
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ assignee: 'agent-1', seq: 2 });
    });

    it.each<[string, unknown, string]>([
      ['a space', 'agent 1', ID_RULE],
      ['129 characters', 'a'.repeat(129), ID_RULE],
      ['empty', '', ID_RULE],
      ['"none"', 'none', 'assignee must not be "none": it is reserved for the list filters'],
      ['"any"', 'any', 'assignee must not be "any": it is reserved for the list filters'],
      ['null', null, 'assignee must be a string'],
      ['a number', 7, 'assignee must be a string'],
      ['absent', undefined, 'assignee must be a string'],
    ])('400 validation_failed for an assignee that is %s', async (_name, assignee, message) => {
      const { id } = await inbox.create();
      const before = await inbox.get(id);

      const res = await inbox.claim(id, assignee);

      expectProblem(res, 400, 'validation_failed', [{ field: 'assignee', message }]);
      expect((await inbox.get(id)).body).toEqual(before.body);
    });

    it('400 validation_failed for another field', async () => {
      const { id } = await inbox.create();
      const res = await http()
        .post(`/api/conversations/${id}/claim`)
        .send({ assignee: 'agent-1', team: 'billing' });
      expectProblem(res, 400, 'validation_failed', [
        { field: 'team', message: 'property team should not exist' },
      ]);
      expect((await inbox.get(id)).body).toMatchObject({ assignee: null, team: null });
    });

    it('404 conversation_not_found for an unknown id', async () => {
      expectProblem(await inbox.claim(UNKNOWN_ID, 'agent-1'), 404, 'conversation_not_found');
    });

    // Route order: claim is declared before the conversation routes, with the same id rule.
    it.each(['not-a-uuid', 'counts', 'events'])(
      '404 conversation_not_found for the non-UUID id %j',
      async (id) => {
        expectProblem(await inbox.claim(id, 'agent-1'), 404, 'conversation_not_found');
      },
    );

    it('20 claims at once, 10 agents twice each: one wins with one seq, its repeats 200, the rest 409', async () => {
      const { id } = await inbox.create();
      const events = await stream(`/api/conversations/${id}/events`);
      const agents = Array.from({ length: 20 }, (_, i) => `agent-${i % 10}`);

      const answers = await Promise.all(agents.map((agent) => inbox.claim(id, agent)));

      const won = answers.filter((res) => res.status === 200);
      const winner = (won[0].body as { assignee: string }).assignee;
      expect(won.length).toBeGreaterThanOrEqual(1);
      expect(won.length).toBeLessThanOrEqual(2);
      for (const res of won) {
        expect(res.body).toMatchObject({ assignee: winner, seq: 1 });
      }
      expect(agents.filter((agent) => agent === winner)).toHaveLength(2);
      const lost = answers.filter((res) => res.status !== 200);
      expect(lost).toHaveLength(20 - won.length);
      for (const res of lost) {
        expectAlreadyAssigned(res, winner);
      }
      await events.waitForEvents(1);
      await settle();
      expect(events.events).toHaveLength(1);
      expect((await inbox.post(id, 'agent')).seq).toBe(2);
      events.close();
    });
  });

  describe('access control (API_KEYS set)', () => {
    const { http } = useListeningApp({ API_KEYS });
    const withKey = inboxClient(http, bearer(BACKEND_KEY));

    it('an API key claims', async () => {
      const { id } = await withKey.create();
      const res = await withKey.claim(id, 'agent-1');
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ assignee: 'agent-1' });
    });

    it('a customer token gets 403 forbidden; no credential 401', async () => {
      const { id, customerToken } = await withKey.create();
      expectProblem(
        await inboxClient(http, bearer(customerToken)).claim(id, 'agent-1'),
        403,
        'forbidden',
      );
      expectProblemCode(await inboxClient(http).claim(id, 'agent-1'), 401, 'unauthorized');
      expect((await withKey.get(id)).body).toMatchObject({ assignee: null });
    });
  });
});
