import http from 'node:http';
import { EventStreamClient, openEventStream, StreamEvent } from './utils/event-stream';
import { describeWithRedis } from './utils/redis';
import { requestJson, ServerProcess, spawnServer } from './utils/spawn-server';

const createOn = async (server: ServerProcess): Promise<string> => {
  const res = await requestJson<{ id: string }>(server.baseUrl, 'POST', '/api/conversations');
  expect(res.status).toBe(201);
  return res.body.id;
};

const postOn = async (server: ServerProcess, id: string, content: string) => {
  const res = await requestJson<{ id: string; seq: number }>(
    server.baseUrl,
    'POST',
    `/api/conversations/${id}/messages`,
    { sender: 'agent', content },
  );
  expect(res.status).toBe(201);
  return res.body;
};

const eventsPath = (id: string) => `/api/conversations/${id}/events`;

describe('event stream (built server, WORKERS=2)', () => {
  jest.setTimeout(60_000);
  let server: ServerProcess;

  beforeAll(async () => {
    server = await spawnServer({ WORKERS: '2', EVENT_REPLAY_LIMIT: '25', SSE_HEARTBEAT_MS: '200' });
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
      expect(events.map((e) => e.id)).toEqual(Array.from({ length: 11 }, (_, i) => String(i + 1)));
      expect(events.slice(0, 10).map((e) => e.event)).toEqual(Array(10).fill('message.created'));
      expect(JSON.parse(events[2].data)).toMatchObject({ id: posted[2].id, seq: 3, content: 'm2' });
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
    const stream = await openEventStream(server.baseUrl, eventsPath(id), { 'Last-Event-ID': '5' });
    const replayed = await stream.waitForEvents(20);
    expect(replayed.map((e) => Number(e.id))).toEqual(Array.from({ length: 20 }, (_, i) => i + 6));
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
    const stream = await openEventStream(server.baseUrl, eventsPath(id), { 'Last-Event-ID': '5' });
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
    const stream = await openEventStream(server.baseUrl, eventsPath(id), { 'Last-Event-ID': '99' });
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

describeWithRedis('event stream: STORE=redis, two instances', (redis) => {
  jest.setTimeout(60_000);

  it('a subscriber on one instance sees posts and deletes made through the other; replay and reset come from Redis', async () => {
    const env = {
      STORE: 'redis',
      REDIS_URL: redis().url,
      REDIS_KEY_PREFIX: redis().newPrefix(),
      WORKERS: '0',
      EVENT_REPLAY_LIMIT: '10',
    };
    const [a, b] = await Promise.all([spawnServer(env), spawnServer(env)]);
    try {
      const id = await createOn(a);
      const stream = await openEventStream(a.baseUrl, eventsPath(id));
      const first = await postOn(b, id, 'from b');
      await postOn(b, id, 'again');
      await requestJson(b.baseUrl, 'DELETE', `/api/conversations/${id}/messages/${first.id}`);
      const events = await stream.waitForEvents(3, 1_000);
      expect(events.map((e) => [e.id, e.event])).toEqual([
        ['1', 'message.created'],
        ['2', 'message.created'],
        ['3', 'message.deleted'],
      ]);
      expect(JSON.parse(events[0].data)).toMatchObject({ id: first.id, content: 'from b' });
      stream.close();

      // Replay from Redis: reconnect to the other instance after missing two.
      const again = await openEventStream(b.baseUrl, eventsPath(id), { 'Last-Event-ID': '1' });
      expect((await again.waitForEvents(2)).map((e) => e.id)).toEqual(['2', '3']);
      again.close();

      for (let i = 0; i < 15; i++) {
        await postOn(a, id, `m${i}`);
      }
      const reset = await openEventStream(b.baseUrl, eventsPath(id), { 'Last-Event-ID': '1' });
      expect((await reset.waitForEvents(1))[0]).toEqual({
        id: '18',
        event: 'reset',
        data: '{"lastEventId":18}',
      });
      reset.close();
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

/**
 * Posts to a conversation on `lanes` concurrent connections until stopped; stop() resolves
 * with the last seq posted.
 */
function keepPosting(server: ServerProcess, id: string, lanes = 4) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: lanes });
  let posting = true;
  let lastSeq = 0;
  const running = Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      for (let i = 0; posting; i++) {
        const res = await requestJson<{ seq: number }>(
          server.baseUrl,
          'POST',
          `/api/conversations/${id}/messages`,
          { sender: 'agent', content: `lane ${lane} #${i}` },
          agent,
        );
        expect(res.status).toBe(201);
        lastSeq = Math.max(lastSeq, res.body.seq);
      }
    }),
  );
  return {
    posted: () => lastSeq,
    stop: async () => {
      posting = false;
      await running;
      agent.destroy();
      return lastSeq;
    },
  };
}

/**
 * Waits until the stream has told everything up to `lastSeq`, then checks that it told every
 * seq after `from` once and in order, or a `reset` and every seq after the reset's.
 */
async function expectEverySeq(
  stream: EventStreamClient,
  from: number,
  lastSeq: number,
): Promise<void> {
  const lastId = () => Number(stream.events.at(-1)?.id ?? from);
  const deadline = Date.now() + 5_000;
  while (lastId() < lastSeq && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  let expected = from + 1;
  const skipped: string[] = [];
  for (const event of stream.events as StreamEvent[]) {
    const seq = Number(event.id);
    if (event.event === 'reset') {
      expected = seq + 1;
    } else if (seq !== expected) {
      skipped.push(`${expected}..${seq - 1}`);
      expected = seq + 1;
    } else {
      expected++;
    }
  }
  expect(skipped).toEqual([]);
  expect(expected - 1).toBe(lastSeq);
}

describeWithRedis('event stream: STORE=redis, no gaps', (redis) => {
  jest.setTimeout(120_000);

  it("gives a new process's first subscriber every change from Last-Event-ID 0, while another instance posts", async () => {
    const env = {
      STORE: 'redis',
      REDIS_URL: redis().url,
      REDIS_KEY_PREFIX: redis().newPrefix(),
      WORKERS: '0',
    };
    const writer = await spawnServer(env);
    try {
      for (let trial = 0; trial < 3; trial++) {
        const reader = await spawnServer(env);
        const id = await createOn(writer);
        const posting = keepPosting(writer, id);
        try {
          while (posting.posted() < 5) {
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
          // The reader's first watch: its subscriber connection is made now, while posts go on.
          const stream = await openEventStream(reader.baseUrl, eventsPath(id), {
            'Last-Event-ID': '0',
          });
          expect(stream.status).toBe(200);
          const posted = posting.posted();
          while (posting.posted() < posted + 50) {
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          await expectEverySeq(stream, 0, await posting.stop());
          stream.close();
        } finally {
          await posting.stop();
          await reader.stop();
        }
      }
    } finally {
      await writer.stop();
    }
  });

  it('catches open streams up when their subscriber connection is killed, while another instance posts', async () => {
    const prefix = redis().newPrefix();
    const env = { STORE: 'redis', REDIS_URL: redis().url, REDIS_KEY_PREFIX: prefix, WORKERS: '0' };
    const [reader, writer] = await Promise.all([spawnServer(env), spawnServer(env)]);
    /** Kills this prefix's subscriber connections (the reader's; the writer has none). */
    const killSubscriber = async () => {
      const list = await redis().admin.client('LIST');
      const ids = String(list)
        .split('\n')
        .filter((line) => line.includes(` name=${prefix}sub `))
        .map((line) => /\bid=(\d+)/.exec(line)?.[1]);
      expect(ids).toHaveLength(1);
      await redis().admin.client('KILL', 'ID', String(ids[0]));
    };
    try {
      const ids = [await createOn(writer), await createOn(writer)];
      const streams = await Promise.all(
        [...ids, ...ids].map((id) => openEventStream(reader.baseUrl, eventsPath(id))),
      );
      const posting = ids.map((id) => keepPosting(writer, id, 2));
      for (let kill = 0; kill < 2; kill++) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        await killSubscriber();
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      const lastSeqs = await Promise.all(posting.map((p) => p.stop()));
      for (const [i, stream] of streams.entries()) {
        await expectEverySeq(stream, 0, lastSeqs[i % 2]);
        stream.close();
      }
    } finally {
      await Promise.all([reader.stop(), writer.stop()]);
    }
  });
});
