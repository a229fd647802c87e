import { EvictionService } from '../../src/eviction/eviction.service';
import { API_KEYS, BACKEND_KEY, bearer, CONSOLE_KEY } from '../utils/credentials';
import { EventStreamClient } from '../utils/event-stream';
import { eventsOf, inboxClient, settle, useListeningApp } from '../utils/inbox';

const FEED = '/api/conversations/events';
const TTL = 60_000;

/** Waits for the stream's next `count` events after the `seen` first; those events, parsed. */
async function next(client: EventStreamClient, seen: number, count = 1) {
  await client.waitForEvents(seen + count);
  return eventsOf(client, seen).slice(0, count);
}

describe('GET /api/conversations/events', () => {
  describe('open mode (no API_KEYS)', () => {
    const { app, clock, http, stream } = useListeningApp({
      CONVERSATION_TTL_MS: String(TTL),
      // Never during the run: the test sweeps itself.
      EVICTION_CRON: '0 0 0 1 1 *',
    });
    const inbox = inboxClient(http);

    it('reaches its handler (not the {id} route): a stream that starts with reset', async () => {
      const feed = await stream(FEED);

      expect(feed.status).toBe(200);
      expect(feed.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(feed.headers['cache-control']).toBe('no-store');
      expect(await feed.waitForEvents(1)).toEqual([{ event: 'reset', data: '{}' }]);
      feed.close();
    });

    it('tells every change of every conversation with its row: create, post, read, delete, PATCH, claim, eviction', async () => {
      const feed = await stream(FEED);
      await feed.waitForEvents(1);
      let seen = 1;

      clock.advance(1_000);
      const { id } = await inbox.create({ customer: { name: 'Ada' } });
      const [created] = await next(feed, seen++);
      expect(created).toEqual({
        event: 'conversation.created',
        id: undefined,
        data: {
          id,
          conversationId: id,
          seq: 0,
          status: 'open',
          snoozedUntil: null,
          assignee: null,
          team: null,
          customer: { name: 'Ada' },
          unread: { customer: 0, agent: 0 },
          waitingSince: null,
          createdAt: clock.time,
          lastActivityAt: clock.time,
          messageCount: 0,
          lastMessage: null,
        },
      });

      clock.advance(1_000);
      const message = await inbox.post(id, 'customer', 'hello');
      const [posted] = await next(feed, seen++);
      expect(posted).toEqual({
        event: 'conversation.updated',
        id: undefined,
        data: {
          ...created.data,
          seq: 1,
          unread: { customer: 0, agent: 1 },
          waitingSince: clock.time,
          lastActivityAt: clock.time,
          messageCount: 1,
          lastMessage: { sender: 'customer', seq: 1, content: 'hello' },
        },
      });

      clock.advance(1_000);
      const read = await http()
        .post(`/api/conversations/${id}/read`)
        .send({ sender: 'agent', seq: 1 });
      expect(read.status).toBe(200);
      const [afterRead] = await next(feed, seen++);
      expect(afterRead).toMatchObject({
        event: 'conversation.updated',
        data: {
          id,
          seq: 2,
          unread: { customer: 0, agent: 0 },
          waitingSince: posted.data.waitingSince,
        },
      });

      clock.advance(1_000);
      const deleted = await http().delete(`/api/conversations/${id}/messages/${message.id}`);
      expect(deleted.status).toBe(200);
      const [afterDelete] = await next(feed, seen++);
      expect(afterDelete).toMatchObject({
        event: 'conversation.updated',
        data: { id, seq: 3, messageCount: 0, lastMessage: null, waitingSince: null },
      });

      clock.advance(1_000);
      expect((await inbox.patch(id, { status: 'pending', team: 'billing' })).status).toBe(200);
      const [patched] = await next(feed, seen++);
      expect(patched).toMatchObject({
        event: 'conversation.updated',
        data: { id, seq: 4, status: 'pending', team: 'billing', lastActivityAt: clock.time },
      });

      expect((await inbox.claim(id, 'agent-1')).status).toBe(200);
      const [claimed] = await next(feed, seen++);
      expect(claimed).toMatchObject({
        event: 'conversation.updated',
        data: { id, seq: 5, assignee: 'agent-1' },
      });

      // Nothing changed: nothing told.
      expect((await inbox.patch(id, { status: 'pending' })).status).toBe(200);
      expect((await inbox.claim(id, 'agent-1')).status).toBe(200);
      await settle();
      expect(feed.events).toHaveLength(seen);

      clock.advance(TTL + 1);
      expect(await app().get(EvictionService).sweep()).toBeGreaterThanOrEqual(1);
      const [evicted] = await next(feed, seen++);
      expect(evicted).toEqual({
        event: 'conversation.evicted',
        id: undefined,
        data: { conversationId: id },
      });
      await settle();
      expect(feed.events).toHaveLength(seen);
      feed.close();
    });

    it('a snooze: the PATCH, and the wake the waker writes', async () => {
      const feed = await stream(FEED);
      await feed.waitForEvents(1);
      const { id } = await inbox.create();
      await feed.waitForEvents(2);
      const until = clock.time + 10_000;
      expect((await inbox.patch(id, { status: 'snoozed', snoozedUntil: until })).status).toBe(200);
      const [snoozed] = await next(feed, 2);
      expect(snoozed.data).toMatchObject({ id, status: 'snoozed', snoozedUntil: until });

      clock.time = until;
      const [woken] = await next(feed, 3);
      expect(woken).toMatchObject({
        event: 'conversation.updated',
        data: { id, status: 'open', snoozedUntil: null, seq: 2, lastActivityAt: until },
      });
      feed.close();
    });

    it('every subscriber gets every event', async () => {
      const feeds = await Promise.all([1, 2, 3].map(() => stream(FEED)));
      await Promise.all(feeds.map((feed) => feed.waitForEvents(1)));
      const { id } = await inbox.create();
      await inbox.post(id, 'agent', 'one');
      for (const feed of feeds) {
        const [created, updated] = await next(feed, 1, 2);
        expect([created.event, created.data.id]).toEqual(['conversation.created', id]);
        expect([updated.event, updated.data.id]).toEqual(['conversation.updated', id]);
        feed.close();
      }
    });
  });

  describe('access control (API_KEYS set, MAX_EVENT_STREAMS_PER_CLIENT=2)', () => {
    const { http, stream } = useListeningApp({ API_KEYS, MAX_EVENT_STREAMS_PER_CLIENT: '2' });
    const withKey = inboxClient(http, bearer(BACKEND_KEY));

    it('an API key, in the header or as ?access_token=, follows the feed', async () => {
      const byHeader = await stream(FEED, bearer(BACKEND_KEY));
      const byQuery = await stream(`${FEED}?access_token=${CONSOLE_KEY}`);
      expect([byHeader.status, byQuery.status]).toEqual([200, 200]);
      await Promise.all([byHeader.waitForEvents(1), byQuery.waitForEvents(1)]);
      const { id } = await withKey.create();
      for (const feed of [byHeader, byQuery]) {
        const [created] = await next(feed, 1);
        expect(created.data).toMatchObject({ id });
        feed.close();
      }
    });

    it('a customer token gets 403 forbidden, not a stream; no credential 401', async () => {
      const { customerToken } = await withKey.create();
      for (const feed of [
        await stream(FEED, bearer(customerToken)),
        await stream(`${FEED}?access_token=${customerToken}`),
      ]) {
        expect(feed.status).toBe(403);
        expect(feed.headers['content-type']).toMatch(/^application\/problem\+json/);
        await feed.ended;
        expect(JSON.parse(feed.body())).toMatchObject({ status: 403, code: 'forbidden' });
      }
      const anonymous = await stream(FEED);
      expect(anonymous.status).toBe(401);
      await anonymous.ended;
      expect(JSON.parse(anonymous.body())).toMatchObject({ code: 'unauthorized' });
    });

    it('counts under MAX_EVENT_STREAMS_PER_CLIENT with the conversation streams: one more is 429', async () => {
      const { id } = await withKey.create();
      await settle(100); // the streams of the tests before are given back
      const conversation = await stream(`/api/conversations/${id}/events`, bearer(BACKEND_KEY));
      const feed = await stream(FEED, bearer(BACKEND_KEY));
      expect([conversation.status, feed.status]).toEqual([200, 200]);

      const extra = await stream(FEED, bearer(BACKEND_KEY));
      expect(extra.status).toBe(429);
      await extra.ended;
      expect(JSON.parse(extra.body())).toMatchObject({
        code: 'too_many_streams',
        detail: expect.stringContaining('MAX_EVENT_STREAMS_PER_CLIENT'),
      });
      expect(Number(extra.headers['retry-after'])).toBeGreaterThan(0);

      // Another client has its own share; a closed stream gives its place back.
      const theirs = await stream(FEED, bearer(CONSOLE_KEY));
      expect(theirs.status).toBe(200);
      feed.close();
      await settle(200);
      const again = await stream(FEED, bearer(BACKEND_KEY));
      expect(again.status).toBe(200);
      [conversation, theirs, again].forEach((client) => client.close());
    });
  });
});
