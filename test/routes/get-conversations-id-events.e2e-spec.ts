import { randomUUID } from 'node:crypto';
import net from 'node:net';
import request from 'supertest';
import { useTestApp, useTestAppWithConversation } from '../utils/create-app';
import { createOn, eventsPath, openEventStream, postOn, StreamEvent } from '../utils/event-stream';
import { BACKEND_KEY, bearer } from '../utils/credentials';
import { inboxClient, useListeningApp } from '../utils/inbox';
import { expectProblemDetail } from '../utils/problem';
import {
  requestJson,
  requestText,
  ServerProcess,
  spawnServer,
  useServer,
} from '../utils/spawn-server';
import {
  API_KEY,
  create,
  post,
  read,
  settle,
  stream,
  typing,
  TYPING_READ_ENV,
} from '../utils/typing-read';

const idOf = (res: { text: string }) => (JSON.parse(res.text) as { id: string }).id;

describe('GET /api/conversations/{id}/events', () => {
  describe('event stream (built server, WORKERS=2)', () => {
    jest.setTimeout(60_000);
    let server: ServerProcess;

    beforeAll(async () => {
      server = await spawnServer({
        WORKERS: '2',
        EVENT_REPLAY_LIMIT: '25',
        SSE_HEARTBEAT_MS: '200',
      });
    });

    afterAll(async () => {
      await server.stop();
    });

    it('delivers every post and delete once, in seq order, within a second, across workers', async () => {
      const id = await createOn(server);
      // Several subscribers on fresh connections: the primary shares them out between workers.
      const streams = await Promise.all(
        [1, 2, 3, 4].map(() => openEventStream(server.baseUrl, eventsPath(id))),
      );
      for (const stream of streams) {
        expect(stream.status).toBe(200);
        expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      }
      const started = Date.now();
      const posted = [];
      for (let i = 0; i < 10; i++) {
        posted.push(await postOn(server, id, `m${i}`));
      }
      const deleted = await requestJson(
        server.baseUrl,
        'DELETE',
        `/api/conversations/${id}/messages/${posted[3].id}`,
      );
      expect(deleted.status).toBe(200);

      for (const stream of streams) {
        const events = await stream.waitForEvents(11, 1_000 + (Date.now() - started));
        expect(events.map((e) => e.id)).toEqual(
          Array.from({ length: 11 }, (_, i) => String(i + 1)),
        );
        expect(events.slice(0, 10).map((e) => e.event)).toEqual(Array(10).fill('message.created'));
        expect(JSON.parse(events[2].data)).toMatchObject({
          id: posted[2].id,
          seq: 3,
          content: 'm2',
        });
        expect(events[10]).toEqual({
          id: '11',
          event: 'message.deleted',
          data: JSON.stringify({ messageId: posted[3].id, seq: 11 }),
        });
        // Nothing more: each change exactly once.
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(stream.events).toHaveLength(11);
        stream.close();
      }
    });

    it('sends heartbeat comments on an idle stream', async () => {
      const id = await createOn(server);
      const stream = await openEventStream(server.baseUrl, eventsPath(id));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(stream.comments.filter((c) => c === 'heartbeat').length).toBeGreaterThanOrEqual(2);
      stream.close();
    });

    it('replays the 20 events missed before a reconnect with Last-Event-ID, then goes live', async () => {
      const id = await createOn(server);
      for (let i = 0; i < 25; i++) {
        await postOn(server, id, `m${i}`);
      }
      const stream = await openEventStream(server.baseUrl, eventsPath(id), {
        'Last-Event-ID': '5',
      });
      const replayed = await stream.waitForEvents(20);
      expect(replayed.map((e) => Number(e.id))).toEqual(
        Array.from({ length: 20 }, (_, i) => i + 6),
      );
      expect(JSON.parse(replayed[0].data)).toMatchObject({ seq: 6, content: 'm5' });

      await postOn(server, id, 'live');
      const [, live] = [await stream.waitForEvents(21), stream.events[20]];
      expect(live.id).toBe('26');
      stream.close();
    });

    it('accepts ?lastEventId= as well (EventSource cannot set headers on the first connect)', async () => {
      const id = await createOn(server);
      await postOn(server, id, 'a');
      await postOn(server, id, 'b');
      const stream = await openEventStream(server.baseUrl, `${eventsPath(id)}?lastEventId=1`);
      const [event] = await stream.waitForEvents(1);
      expect(event.id).toBe('2');
      stream.close();
    });

    it('sends reset when the replay buffer no longer covers the gap', async () => {
      const id = await createOn(server);
      for (let i = 0; i < 40; i++) {
        await postOn(server, id, `m${i}`);
      }
      const stream = await openEventStream(server.baseUrl, eventsPath(id), {
        'Last-Event-ID': '5',
      });
      const [reset] = await stream.waitForEvents(1);
      expect(reset).toEqual({ id: '40', event: 'reset', data: '{"lastEventId":40}' });
      await postOn(server, id, 'after the reset');
      const events = await stream.waitForEvents(2);
      expect(events[1].id).toBe('41');
      stream.close();
    });

    it('sends reset for a Last-Event-ID beyond the conversation, so nothing newer is skipped', async () => {
      const id = await createOn(server);
      await postOn(server, id, 'one');
      const stream = await openEventStream(server.baseUrl, eventsPath(id), {
        'Last-Event-ID': '99',
      });
      const [reset] = await stream.waitForEvents(1);
      expect(reset).toEqual({ id: '1', event: 'reset', data: '{"lastEventId":1}' });
      await postOn(server, id, 'two');
      expect((await stream.waitForEvents(2))[1].id).toBe('2');
      stream.close();
    });

    it('answers 404 problem+json for an unknown conversation, not a stream', async () => {
      const stream = await openEventStream(
        server.baseUrl,
        eventsPath('0b7d3c1a-2f7c-4a53-9d0e-5b0c3f9e8e21'),
      );
      expect(stream.status).toBe(404);
      expect(stream.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(stream.body())).toMatchObject({ code: 'conversation_not_found' });
    });

    it('answers 400 for a Last-Event-ID that is not a seq', async () => {
      const id = await createOn(server);
      const stream = await openEventStream(server.baseUrl, eventsPath(id), {
        'Last-Event-ID': 'abc',
      });
      expect(stream.status).toBe(400);
      await stream.ended;
      expect(JSON.parse(stream.body())).toMatchObject({
        code: 'validation_failed',
        errors: [
          { field: 'lastEventId', message: 'Last-Event-ID must be a seq: an integer, 0 or more' },
        ],
      });
    });
  });

  describe('event stream: eviction (built server, WORKERS=2)', () => {
    jest.setTimeout(30_000);

    it('sends conversation.evicted and ends the stream', async () => {
      const server = await spawnServer({
        WORKERS: '2',
        CONVERSATION_TTL_MS: '1000',
        EVICTION_CRON: '* * * * * *',
      });
      try {
        const id = await createOn(server);
        const stream = await openEventStream(server.baseUrl, eventsPath(id));
        const [event] = await stream.waitForEvents(1, 5_000);
        expect(event).toEqual({ event: 'conversation.evicted', data: '{}' });
        await stream.ended;
      } finally {
        await server.stop();
      }
    });
  });

  describe('typing and read receipts (built server, WORKERS=2, API_KEYS set)', () => {
    jest.setTimeout(60_000);
    const server = useServer(TYPING_READ_ENV);

    it('replays reads after Last-Event-ID, and never typing', async () => {
      const { id } = await create(server());
      await post(server(), id, 'one');
      await typing(server(), id, { sender: 'customer' });
      await read(server(), id, { sender: 'agent', seq: 1 });
      await typing(server(), id, { sender: 'agent', typing: false });
      await post(server(), id, 'two');

      const replay = await stream(server(), id, API_KEY, { 'Last-Event-ID': '0' });
      const events: StreamEvent[] = await replay.waitForEvents(3, 2_000);
      expect(events.map((event) => `${event.id} ${event.event}`)).toEqual([
        '1 message.created',
        '2 conversation.read',
        '3 message.created',
      ]);
      await settle(200);
      expect(replay.events).toHaveLength(3);
      replay.close();

      const fromRead = await stream(server(), id, API_KEY, { 'Last-Event-ID': '1' });
      expect(await fromRead.waitForEvents(1, 2_000)).toEqual([
        { id: '2', event: 'conversation.read', data: JSON.stringify({ sender: 'agent', seq: 1 }) },
      ]);
      fromRead.close();
    });
  });

  describe('conversation.updated by viewer (built server, WORKERS=2, API_KEYS set)', () => {
    jest.setTimeout(30_000);
    const server = useServer(TYPING_READ_ENV);
    const send = (method: string, path: string, body: unknown, credential = API_KEY) =>
      requestText(server().baseUrl, method, path, {
        body,
        headers: { authorization: `Bearer ${credential}` },
      });

    it("a customer token's stream gets {seq, status, snoozedUntil}, live and replayed, across workers", async () => {
      const { id, customerToken } = await create(server());
      const base = `/api/conversations/${id}`;
      // Fresh connections: the streams and the changes are shared out between the workers.
      const live = await Promise.all([1, 2].map(() => stream(server(), id, customerToken)));
      expect((await post(server(), id, 'one')).status).toBe(201); // 1
      expect((await send('PATCH', base, { assignee: 'agent-1', team: 'billing' })).status).toBe(
        200,
      ); // 2
      expect(
        (
          await send(
            'POST',
            `${base}/messages`,
            { sender: 'customer', content: 'two' },
            customerToken,
          )
        ).status,
      ).toBe(201); // 3
      expect((await send('PATCH', base, { status: 'resolved' })).status).toBe(200); // 4

      const expected = [
        '1 message.created',
        `2 conversation.updated ${JSON.stringify({ seq: 2, status: 'open', snoozedUntil: null })}`,
        '3 message.created',
        `4 conversation.updated ${JSON.stringify({ seq: 4, status: 'resolved', snoozedUntil: null })}`,
      ];
      const shown = (events: StreamEvent[]) =>
        events.map((e) =>
          e.event === 'conversation.updated'
            ? `${e.id} ${e.event} ${e.data}`
            : `${e.id} ${e.event}`,
        );
      for (const client of live) {
        expect(shown(await client.waitForEvents(4, 2_000))).toEqual(expected);
        expect(client.body()).not.toContain('agent-1');
        client.close();
      }
      const replay = await stream(server(), id, customerToken, { 'Last-Event-ID': '0' });
      expect(shown(await replay.waitForEvents(4, 2_000))).toEqual(expected);
      replay.close();
      const full = await stream(server(), id, API_KEY, { 'Last-Event-ID': '1' });
      const [patched] = await full.waitForEvents(1, 2_000);
      expect(JSON.parse(patched.data)).toMatchObject({
        seq: 2,
        changed: ['assignee', 'team'],
        assignee: 'agent-1',
        team: 'billing',
      });
      full.close();
    });
  });

  describe('query parameters: given once, numbers in plain decimal', () => {
    let id: string;
    const { http } = useTestAppWithConversation(3, (opened) => (id = opened));

    const lastEventIdError = {
      field: 'lastEventId',
      message: 'Last-Event-ID must be a seq: an integer, 0 or more',
    };

    it.each([
      'lastEventId=1&lastEventId=2',
      'lastEventId=0x10',
      'lastEventId=1e2',
      'lastEventId=%201',
      'lastEventId=01',
      'lastEventId=-1',
      'lastEventId=%2B1',
      'lastEventId=1.0',
    ])('GET .../events?%s: 400 validation_failed', async (query) => {
      const res = await http().get(`/api/conversations/${id}/events?${query}`);
      expectProblemDetail(res, 400, 'validation_failed');
      expect((res.body as { errors: unknown }).errors).toEqual([lastEventIdError]);
    });

    it.each(['1, 2', '0x10', '1e2', '01'])(
      'Last-Event-ID: %s: 400 validation_failed',
      async (id_) => {
        const res = await http().get(`/api/conversations/${id}/events`).set('Last-Event-ID', id_);
        expectProblemDetail(res, 400, 'validation_failed');
        expect((res.body as { errors: unknown }).errors).toEqual([lastEventIdError]);
      },
    );
  });

  describe('query parameters: access_token given twice (API_KEYS set)', () => {
    const app = useTestApp({ env: { API_KEYS: API_KEY } });

    it('400 validation_failed, not a 500 and not a stream', async () => {
      const res = await request(app().getHttpServer()).get(
        `/api/conversations/${randomUUID()}/events?access_token=${API_KEY}&access_token=${API_KEY}`,
      );
      expectProblemDetail(res, 400, 'validation_failed');
      expect((res.body as { errors: unknown }).errors).toEqual([
        { field: 'access_token', message: 'access_token must be given once' },
      ]);
    });
  });

  describe('bounded event streams (WORKERS=0, 3 per client, 5 in all)', () => {
    jest.setTimeout(60_000);
    const KEY_A = 'client-a-key-0123456789';
    const KEY_B = 'client-b-key-0123456789';
    const server = useServer({
      WORKERS: '0',
      API_KEYS: `${KEY_A},${KEY_B}`,
      MAX_EVENT_STREAMS_PER_CLIENT: '3',
      MAX_EVENT_STREAMS: '5',
    });
    const as = (key: string) => ({ Authorization: `Bearer ${key}` });

    it('refuses a client past its share with 429 while another gets its stream, and frees places as streams close', async () => {
      const created = await requestText(server().baseUrl, 'POST', '/api/conversations', {
        headers: as(KEY_A),
      });
      const path = `/api/conversations/${idOf(created)}/events`;
      const mine = await Promise.all(
        [1, 2, 3].map(() => openEventStream(server().baseUrl, path, as(KEY_A))),
      );
      expect(mine.map((stream) => stream.status)).toEqual([200, 200, 200]);

      const extra = await openEventStream(server().baseUrl, path, as(KEY_A));
      expect(extra.status).toBe(429);
      expect(JSON.parse(extra.body())).toMatchObject({ code: 'too_many_streams' });
      expect(Number(extra.headers['retry-after'])).toBeGreaterThan(0);

      const theirs = await Promise.all(
        [1, 2].map(() => openEventStream(server().baseUrl, path, as(KEY_B))),
      );
      expect(theirs.map((stream) => stream.status)).toEqual([200, 200]);
      // Five open in all: the process is full, for everyone.
      const sixth = await openEventStream(server().baseUrl, path, as(KEY_B));
      expect(sixth.status).toBe(503);
      expect(JSON.parse(sixth.body())).toMatchObject({ code: 'stream_capacity_exceeded' });

      // A closed stream frees its place at once; so does a client that vanished.
      mine[0].close();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const reopened = await openEventStream(server().baseUrl, path, as(KEY_A));
      expect(reopened.status).toBe(200);

      // Four open again: a stream whose client vanishes takes the fifth place...
      theirs[1].close();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const socket = net.connect(server().port, '127.0.0.1');
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      await new Promise<void>((resolve) =>
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_B}\r\n\r\n`,
          () => resolve(),
        ),
      );
      await new Promise<void>((resolve) => socket.once('data', () => resolve()));
      expect((await openEventStream(server().baseUrl, path, as(KEY_B))).status).toBe(503);
      // ...and frees it when it is gone, without a word.
      socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const afterVanish = await openEventStream(server().baseUrl, path, as(KEY_B));
      expect(afterVanish.status).toBe(200);

      [mine[1], mine[2], theirs[0], reopened, afterVanish].forEach((stream) => stream.close());
    });
  });
  describe('conversation.updated by viewer (API_KEYS set)', () => {
    const { clock, http, stream: open } = useListeningApp({ API_KEYS: BACKEND_KEY });
    const withKey = inboxClient(http, bearer(BACKEND_KEY));

    it("a customer token's stream: {seq, status, snoozedUntil} only, live and on replay, ids gap-free; an API key's: all", async () => {
      const { id, customerToken } = await withKey.create({ customer: { name: 'Ada' } });
      const path = `/api/conversations/${id}/events`;
      const asCustomer = await open(`${path}?access_token=${customerToken}`);
      const asKey = await open(path, bearer(BACKEND_KEY));
      expect([asCustomer.status, asKey.status]).toEqual([200, 200]);

      await withKey.post(id, 'agent', 'one'); // 1
      expect(
        (await withKey.patch(id, { assignee: 'agent-1', metadata: { plan: 'pro' } })).status,
      ).toBe(200); // 2
      await inboxClient(http, bearer(customerToken)).post(id, 'customer', 'two'); // 3
      expect((await withKey.patch(id, { assignee: null, team: 'billing' })).status).toBe(200); // 4
      expect((await withKey.claim(id, 'agent-2')).status).toBe(200); // 5
      const until = clock.time + 600_000;
      expect((await withKey.patch(id, { status: 'snoozed', snoozedUntil: until })).status).toBe(
        200,
      ); // 6

      const live = await asCustomer.waitForEvents(6);
      expect(live.map((event) => `${event.id} ${event.event}`)).toEqual([
        '1 message.created',
        '2 conversation.updated',
        '3 message.created',
        '4 conversation.updated',
        '5 conversation.updated',
        '6 conversation.updated',
      ]);
      expect(live.filter((e) => e.event === 'conversation.updated').map((e) => e.data)).toEqual([
        JSON.stringify({ seq: 2, status: 'open', snoozedUntil: null }),
        JSON.stringify({ seq: 4, status: 'open', snoozedUntil: null }),
        JSON.stringify({ seq: 5, status: 'open', snoozedUntil: null }),
        JSON.stringify({ seq: 6, status: 'snoozed', snoozedUntil: until }),
      ]);
      for (const hidden of ['agent-1', 'agent-2', 'billing', 'plan', 'Ada']) {
        expect(asCustomer.body()).not.toContain(hidden);
      }

      const full = await asKey.waitForEvents(6);
      expect(full.map((event) => event.id)).toEqual(['1', '2', '3', '4', '5', '6']);
      expect(JSON.parse(full[1].data)).toEqual({
        seq: 2,
        changed: ['assignee', 'metadata'],
        status: 'open',
        snoozedUntil: null,
        assignee: 'agent-1',
        team: null,
        customer: { name: 'Ada' },
        metadata: { plan: 'pro' },
      });
      expect(JSON.parse(full[4].data)).toMatchObject({
        seq: 5,
        changed: ['assignee'],
        assignee: 'agent-2',
      });

      // Replayed as it went live: the same frames, for each viewer.
      for (const [client, credential] of [
        [asCustomer, customerToken],
        [asKey, BACKEND_KEY],
      ] as const) {
        const replay = await open(`${path}?access_token=${credential}`, { 'Last-Event-ID': '0' });
        expect(await replay.waitForEvents(6)).toEqual(client.events.slice(0, 6));
        const fromOne = await open(`${path}?access_token=${credential}`, { 'Last-Event-ID': '1' });
        expect(await fromOne.waitForEvents(5)).toEqual(client.events.slice(1, 6));
        replay.close();
        fromOne.close();
      }
      asCustomer.close();
      asKey.close();
    });
  });
});
