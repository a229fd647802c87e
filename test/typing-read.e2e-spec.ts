import http from 'node:http';
import { EventStreamClient, openEventStream, StreamEvent } from './utils/event-stream';
import { describeWithRedis, useRedisInstances } from './utils/redis';
import { requestText, ServerProcess, unknownId, useServer } from './utils/spawn-server';

const API_KEY = 'typing-read-test-key-0123456789';
const TYPING_TTL_MS = 3_000;

interface Reply<T> {
  status: number;
  body: T;
}

/** A request with a credential (an API key or a customer token), on a connection of its own. */
async function call<T = Record<string, unknown>>(
  server: ServerProcess,
  method: string,
  path: string,
  credential = API_KEY,
  body?: unknown,
  agent: http.Agent | false = false,
): Promise<Reply<T>> {
  const { status, text } = await requestText(server.baseUrl, method, path, {
    body,
    headers: { authorization: `Bearer ${credential}` },
    agent,
  });
  return { status, body: (text ? JSON.parse(text) : undefined) as T };
}

async function create(server: ServerProcess): Promise<{ id: string; customerToken: string }> {
  const res = await call<{ id: string; customerToken: string }>(
    server,
    'POST',
    '/api/conversations',
  );
  expect(res.status).toBe(201);
  return res.body;
}

const post = (server: ServerProcess, id: string, content: string) =>
  call<{ seq: number }>(server, 'POST', `/api/conversations/${id}/messages`, API_KEY, {
    sender: 'agent',
    content,
  });

const typing = (
  server: ServerProcess,
  id: string,
  body: unknown,
  credential = API_KEY,
  agent: http.Agent | false = false,
) => call(server, 'POST', `/api/conversations/${id}/typing`, credential, body, agent);

const read = (server: ServerProcess, id: string, body: unknown, credential = API_KEY) =>
  call(server, 'POST', `/api/conversations/${id}/read`, credential, body);

const stream = (
  server: ServerProcess,
  id: string,
  credential = API_KEY,
  headers: Record<string, string> = {},
) =>
  openEventStream(
    server.baseUrl,
    `/api/conversations/${id}/events?access_token=${encodeURIComponent(credential)}`,
    headers,
  );

const settle = (ms = 300) => new Promise((resolve) => setTimeout(resolve, ms));

function typingEvents(client: EventStreamClient): { sender: string; typing: boolean }[] {
  return client.events
    .filter((event) => event.event === 'typing')
    .map((event) => JSON.parse(event.data) as { sender: string; typing: boolean });
}

describe('typing and read receipts (built server, WORKERS=2, API_KEYS set)', () => {
  jest.setTimeout(60_000);
  const server = useServer({
    WORKERS: '2',
    API_KEYS: API_KEY,
    TYPING_TTL_MS: String(TYPING_TTL_MS),
  });

  it('tells subscribers on every worker of typing and reads sent through either', async () => {
    const { id, customerToken } = await create(server());
    // Fresh connections: the primary shares the streams out between both workers.
    const streams = await Promise.all([1, 2, 3, 4].map(() => stream(server(), id)));
    expect((await post(server(), id, 'hello')).body.seq).toBe(1);

    const before = Date.now();
    expect((await typing(server(), id, { sender: 'agent' })).status).toBe(204);
    const after = Date.now();
    const answer = await read(server(), id, { sender: 'customer', seq: 1 }, customerToken);
    expect(answer).toEqual({ status: 200, body: { lastRead: { customer: 1, agent: 0 } } });

    for (const client of streams) {
      const events = await client.waitForEvents(3, 2_000);
      expect(events[0]).toMatchObject({ id: '1', event: 'message.created' });
      // No id line: a typing event has no seq.
      expect(events[1]).toEqual({ event: 'typing', data: expect.any(String) });
      const signal = JSON.parse(events[1].data) as Record<string, unknown>;
      expect(Object.keys(signal)).toEqual(['sender', 'typing', 'expiresAt']);
      expect(signal).toMatchObject({ sender: 'agent', typing: true });
      expect(signal.expiresAt).toBeGreaterThanOrEqual(before + TYPING_TTL_MS - 50);
      expect(signal.expiresAt).toBeLessThanOrEqual(after + TYPING_TTL_MS + 50);
      // The read takes the next seq, and its id is that seq.
      expect(events[2]).toEqual({
        id: '2',
        event: 'conversation.read',
        data: JSON.stringify({ sender: 'customer', seq: 1 }),
      });
    }

    // At or below the horizon: the current state, no event, no seq.
    expect(await read(server(), id, { sender: 'customer', seq: 0 }, customerToken)).toEqual(answer);
    expect(await read(server(), id, { sender: 'customer', seq: 1 })).toEqual(answer);
    // The next message follows the read.
    expect((await post(server(), id, 'next')).body.seq).toBe(3);
    expect((await read(server(), id, { sender: 'agent', seq: 3 })).body).toEqual({
      lastRead: { customer: 1, agent: 3 },
    });
    for (const client of streams) {
      const events = await client.waitForEvents(5, 2_000);
      expect(events.slice(3).map((event) => `${event.id} ${event.event}`)).toEqual([
        '3 message.created',
        '4 conversation.read',
      ]);
      await settle(100);
      expect(client.events).toHaveLength(5);
      client.close();
    }

    const history = await call<{ lastRead: unknown; messageCount: number }>(
      server(),
      'GET',
      `/api/conversations/${id}`,
      customerToken,
    );
    expect(history.body).toMatchObject({ lastRead: { customer: 1, agent: 3 }, messageCount: 2 });
  });

  it('settles two sides that each acknowledge the latest event id they received', async () => {
    const { id, customerToken } = await create(server());
    const watcher = await stream(server(), id);
    await post(server(), id, 'one');
    await post(server(), id, 'two');
    await watcher.waitForEvents(2, 2_000);
    const credentials = { customer: customerToken, agent: API_KEY };
    let horizons = { customer: 0, agent: 0 };
    let moves = 0;
    for (let round = 0; round < 10; round++) {
      for (const sender of ['customer', 'agent'] as const) {
        const latest = Number(watcher.events.at(-1)?.id);
        const answer = await read(server(), id, { sender, seq: latest }, credentials[sender]);
        expect(answer.status).toBe(200);
        const lastRead = (answer.body as { lastRead: typeof horizons }).lastRead;
        if (lastRead[sender] !== horizons[sender]) {
          moves++;
          await watcher.waitForEvents(2 + moves, 2_000);
        }
        horizons = lastRead;
      }
    }
    // Each side moves once, to the last message; the receipts of receipts change nothing.
    expect(moves).toBeLessThanOrEqual(2);
    expect(horizons).toEqual({ customer: 2, agent: 2 });
    await settle(200);
    expect(watcher.events.map((event) => `${event.id} ${event.event}`)).toEqual([
      '1 message.created',
      '2 message.created',
      '3 conversation.read',
      '4 conversation.read',
    ]);
    watcher.close();
  });

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

  it('lets a customer token send typing and reads as customer only, on its own conversation', async () => {
    const { id, customerToken } = await create(server());
    const other = await create(server());
    await post(server(), id, 'hi');

    for (const [route, body] of [
      ['typing', { sender: 'agent' }],
      ['read', { sender: 'agent', seq: 1 }],
    ] as const) {
      const refused = await call(
        server(),
        'POST',
        `/api/conversations/${id}/${route}`,
        customerToken,
        body,
      );
      expect(refused.status).toBe(403);
      expect(refused.body).toMatchObject({ code: 'sender_not_allowed' });
      const elsewhere = await call(
        server(),
        'POST',
        `/api/conversations/${other.id}/${route}`,
        customerToken,
        { ...body, sender: 'customer' },
      );
      expect(elsewhere.status).toBe(404);
      expect(elsewhere.body).toMatchObject({ code: 'conversation_not_found' });
      const anonymous = await requestText(
        server().baseUrl,
        'POST',
        `/api/conversations/${id}/${route}`,
        {
          body: { ...body, sender: 'customer' },
        },
      );
      expect(anonymous.status).toBe(401);
    }
    expect((await typing(server(), id, { sender: 'customer' }, customerToken)).status).toBe(204);
    expect((await read(server(), id, { sender: 'customer', seq: 1 }, customerToken)).status).toBe(
      200,
    );
    // The refused reads changed nothing.
    expect((await read(server(), id, { sender: 'agent', seq: 0 })).body).toEqual({
      lastRead: { customer: 1, agent: 0 },
    });
  });

  it('answers 404 for an unknown conversation and 400 for a bad body or a seq past the last', async () => {
    const { id } = await create(server());
    await post(server(), id, 'hi');
    for (const [route, body] of [
      ['typing', { sender: 'agent' }],
      ['read', { sender: 'agent', seq: 0 }],
    ] as const) {
      const missing = await call(
        server(),
        'POST',
        `/api/conversations/${unknownId()}/${route}`,
        API_KEY,
        body,
      );
      expect(missing.status).toBe(404);
      expect(missing.body).toMatchObject({ code: 'conversation_not_found' });
    }
    const badBodies: [string, unknown][] = [
      ['typing', {}],
      ['typing', { sender: 'bot' }],
      ['typing', { sender: 'agent', typing: 'yes' }],
      ['typing', { sender: 'agent', typing: null }],
      ['typing', { sender: 'agent', extra: 1 }],
      ['read', { sender: 'agent' }],
      ['read', { sender: 'agent', seq: -1 }],
      ['read', { sender: 'agent', seq: 1.5 }],
      ['read', { sender: 'agent', seq: '1' }],
      ['read', { sender: 'agent', seq: 2 }], // beyond the last seq (1)
    ];
    for (const [route, body] of badBodies) {
      const res = await call(server(), 'POST', `/api/conversations/${id}/${route}`, API_KEY, body);
      expect({ route, body, status: res.status, code: res.body.code }).toEqual({
        route,
        body,
        status: 400,
        code: 'validation_failed',
      });
    }
  });

  it('absorbs typing renewals within a second in one process; a stop always goes out', async () => {
    const { id } = await create(server());
    const watcher = await stream(server(), id);
    // One connection: every request reaches the same worker.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 5; i++) {
        expect((await typing(server(), id, { sender: 'agent' }, API_KEY, agent)).status).toBe(204);
      }
      expect((await typing(server(), id, { sender: 'customer' }, API_KEY, agent)).status).toBe(204);
      await typing(server(), id, { sender: 'agent', typing: false }, API_KEY, agent);
      await typing(server(), id, { sender: 'agent', typing: false }, API_KEY, agent);
      await settle();
      expect(typingEvents(watcher)).toEqual([
        expect.objectContaining({ sender: 'agent', typing: true }),
        expect.objectContaining({ sender: 'customer', typing: true }),
        expect.objectContaining({ sender: 'agent', typing: false }),
        expect.objectContaining({ sender: 'agent', typing: false }),
      ]);
      // A second later a renewal goes out again.
      await settle(1_000);
      await typing(server(), id, { sender: 'customer' }, API_KEY, agent);
      await typing(server(), id, { sender: 'customer' }, API_KEY, agent);
      await settle();
      expect(typingEvents(watcher).slice(4)).toEqual([
        expect.objectContaining({ sender: 'customer', typing: true }),
      ]);
      // Typing is not a change: nothing in the replay buffer, no id.
      expect(watcher.events.every((event) => event.id === undefined)).toBe(true);
    } finally {
      agent.destroy();
      watcher.close();
    }
  });
});

describeWithRedis('typing and read receipts: two instances sharing one Redis', (redis) => {
  jest.setTimeout(60_000);
  const servers = useRedisInstances(redis, [
    { WORKERS: '0', API_KEYS: API_KEY },
    { WORKERS: '0', API_KEYS: API_KEY },
  ]);

  it('carries typing and reads from one instance to the subscribers of the other', async () => {
    const [a, b] = servers();
    const { id, customerToken } = await create(a);
    const onB = await stream(b, id, customerToken);
    const onA = await stream(a, id);
    await post(a, id, 'hello');
    expect((await typing(a, id, { sender: 'agent' })).status).toBe(204);
    expect((await read(b, id, { sender: 'customer', seq: 1 }, customerToken)).body).toEqual({
      lastRead: { customer: 1, agent: 0 },
    });
    for (const client of [onA, onB]) {
      const events = await client.waitForEvents(3, 2_000);
      expect(events.map((event) => `${event.id ?? '-'} ${event.event}`)).toEqual([
        '1 message.created',
        '- typing',
        '2 conversation.read',
      ]);
      expect(JSON.parse(events[1].data)).toMatchObject({ sender: 'agent', typing: true });
      client.close();
    }
    expect((await post(b, id, 'next')).body.seq).toBe(3);
    const history = await call(a, 'GET', `/api/conversations/${id}`);
    expect(history.body).toMatchObject({ lastRead: { customer: 1, agent: 0 } });

    const replay = await stream(b, id, API_KEY, { 'Last-Event-ID': '1' });
    expect((await replay.waitForEvents(2, 2_000)).map((event) => event.event)).toEqual([
      'conversation.read',
      'message.created',
    ]);
    replay.close();
  });
});
