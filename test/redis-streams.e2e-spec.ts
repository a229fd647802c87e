import http from 'node:http';
import {
  createOn,
  EventStreamClient,
  eventsPath,
  openEventStream,
  postOn,
  StreamEvent,
} from './utils/event-stream';
import { describeWithRedis, useRedisInstances } from './utils/redis';
import { requestJson, ServerProcess, spawnServer } from './utils/spawn-server';
import { API_KEY, call, create, post, read, stream, typing } from './utils/typing-read';

/*
 * Event streams on Redis: a change made through one instance reaches the subscribers of
 * another, and replay, reset and the subscriber connection's gaps are Redis's. What the
 * events route answers is in routes/get-conversations-id-events.e2e-spec.ts.
 */

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
