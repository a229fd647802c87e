import calculateSlot from 'cluster-key-slot';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { EventStreamClient, openEventStream } from './utils/event-stream';
import { describeWithRedisCluster } from './utils/redis-cluster';
import { requestText, ServerProcess, spawnServer } from './utils/spawn-server';

/**
 * An open event stream follows its conversation's slot: after a reshard or a failover, every
 * change still reaches it once, in seq order, within 5 s, and without a `reset` (each test
 * makes far fewer changes than EVENT_REPLAY_LIMIT). The streaming instance never writes to
 * the conversation itself, so nothing but its subscriber tells it that the slot moved.
 */
describeWithRedisCluster('Redis Cluster: an open event stream across a slot move', (cluster) => {
  jest.setTimeout(90_000);
  const prefix = `test:${randomUUID().slice(0, 8)}:streams:`;
  /** Posts only (WORKERS=0). */
  let poster: ServerProcess;
  /** Streams only (WORKERS=0). */
  let streamer: ServerProcess;
  /** One instance with two workers: streams and posts. */
  let workers: ServerProcess;

  const started: ServerProcess[] = [];

  beforeAll(async () => {
    const env = {
      STORE: 'redis',
      REDIS_CLUSTER_NODES: cluster().seeds,
      REDIS_KEY_PREFIX: prefix,
    };
    // One after another, each kept as it starts, so that afterAll stops what did start.
    for (const workerCount of ['0', '0', '2']) {
      started.push(await spawnServer({ ...env, WORKERS: workerCount }));
    }
    [poster, streamer, workers] = started;
  }, 90_000);

  afterAll(async () => {
    await Promise.all(started.map((server) => server.stop()));
  }, 30_000);

  const slotOf = (id: string) => calculateSlot(`${prefix}{${id}}:conv`);

  /** Creates a conversation; a 503 (a shard failing over) is retried. */
  async function create(server: ServerProcess): Promise<string> {
    let res = { status: 0, text: '' };
    for (let attempt = 0; attempt < 60 && res.status !== 201; attempt++) {
      if (attempt > 0) {
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      res = await requestText(server.baseUrl, 'POST', '/api/conversations').catch(() => ({
        status: 0,
        text: '',
      }));
    }
    expect(res.status).toBe(201);
    return (JSON.parse(res.text) as { id: string }).id;
  }

  /** Posts `count` messages one after another; a 503 (a shard failing over) is retried. */
  async function post(
    server: ServerProcess,
    id: string,
    count: number,
    agent: http.Agent | false = false,
  ): Promise<void> {
    for (let i = 0; i < count; i++) {
      let status = 0;
      for (let attempt = 0; attempt < 60 && status !== 201; attempt++) {
        const res = await requestText(server.baseUrl, 'POST', `/api/conversations/${id}/messages`, {
          body: { sender: 'agent', content: `m${i}` },
          agent,
        }).catch(() => ({ status: 0 }));
        status = res.status;
        if (status !== 201) {
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
      expect(status).toBe(201);
    }
  }

  /** The conversation's last seq, from its history (a 503 whose write stood counts too). */
  async function lastSeq(
    server: ServerProcess,
    id: string,
    agent: http.Agent | false,
  ): Promise<number> {
    const res = await requestText(server.baseUrl, 'GET', `/api/conversations/${id}`, { agent });
    expect(res.status).toBe(200);
    const { messages } = JSON.parse(res.text) as { messages: { seq: number }[] };
    return Math.max(0, ...messages.map((message) => message.seq));
  }

  /**
   * Every change up to the conversation's last seq reaches each stream within 5 s; then one
   * more, after which each stream holds each seq exactly once, in order, and no `reset`.
   */
  async function expectEveryChangeOnce(
    streams: EventStreamClient[],
    from: ServerProcess,
    id: string,
    agent: http.Agent | false = false,
  ): Promise<void> {
    const last = await lastSeq(from, id, agent);
    await Promise.all(streams.map((stream) => stream.waitForEvents(last, 5_000)));
    await post(from, id, 1, agent);
    for (const stream of streams) {
      await stream.waitForEvents(last + 1, 5_000);
      expect(stream.events.filter((event) => event.event === 'reset')).toEqual([]);
      expect(stream.events.map((event) => Number(event.id))).toEqual(
        Array.from({ length: last + 1 }, (_, i) => i + 1),
      );
    }
  }

  it('a stream on an instance that only streams gets every change once, in order, across a reshard of its slot', async () => {
    const id = await create(poster);
    const stream = await openEventStream(streamer.baseUrl, `/api/conversations/${id}/events`);
    try {
      expect(stream.status).toBe(200);
      await post(poster, id, 3);
      await stream.waitForEvents(3);
      const { from, to } = await cluster().moveSlot(slotOf(id));
      expect((await cluster().ownerOf(slotOf(id))).port).toBe(to.port);
      expect(to.port).not.toBe(from.port);
      await post(poster, id, 5);
      await expectEveryChangeOnce([stream], poster, id);
    } finally {
      stream.close();
    }
  });

  it('the streams of both workers of an instance with WORKERS=2 get every change once, in order, across a reshard of its slot', async () => {
    const id = await create(workers);
    // Two connections in a row go to the two workers (the primary hands them round-robin);
    // every post goes over one kept-alive connection, so one worker only streams.
    const streams = [
      await openEventStream(workers.baseUrl, `/api/conversations/${id}/events`),
      await openEventStream(workers.baseUrl, `/api/conversations/${id}/events`),
    ];
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect(streams.map((stream) => stream.status)).toEqual([200, 200]);
      await post(workers, id, 3, agent);
      await Promise.all(streams.map((stream) => stream.waitForEvents(3)));
      await cluster().moveSlot(slotOf(id));
      await post(workers, id, 8, agent);
      await expectEveryChangeOnce(streams, workers, id, agent);
    } finally {
      agent.destroy();
      streams.forEach((stream) => stream.close());
    }
  });

  it('a stream on an instance that only streams gets every change once, in order, after its master fails over', async () => {
    const id = await create(poster);
    const stream = await openEventStream(streamer.baseUrl, `/api/conversations/${id}/events`);
    const victim = await cluster().ownerOf(slotOf(id));
    try {
      expect(stream.status).toBe(200);
      await post(poster, id, 2);
      await stream.waitForEvents(2);
      await victim.kill();
      // The replica takes over after cluster-node-timeout (2 s).
      for (let i = 0; i < 100; i++) {
        const owner = await cluster()
          .ownerOf(slotOf(id))
          .catch(() => victim);
        if (owner !== victim) {
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect((await cluster().ownerOf(slotOf(id))).port).not.toBe(victim.port);
      await post(poster, id, 3);
      await expectEveryChangeOnce([stream], poster, id);
    } finally {
      stream.close();
      await victim.start();
    }
  });

  it('the inbox feed of an instance that only streams moves off a failed node, says reset, and goes on', async () => {
    const feed = await openEventStream(streamer.baseUrl, '/api/conversations/events');
    try {
      expect(feed.status).toBe(200);
      await feed.waitForEvents(1);
      expect(feed.events[0].event).toBe('reset');
      const first = await create(poster);
      await waitUntil(() =>
        feed.events.some((e) => e.event === 'conversation.created' && e.data.includes(first)),
      );
      // The node the streamer's feed subscriber is connected to (its client name says so).
      const listed = await Promise.all(
        cluster().nodes.map(async (node) => {
          const client = node.client();
          try {
            return (await client.call('CLIENT', 'LIST')) as string;
          } catch {
            return '';
          } finally {
            client.disconnect();
          }
        }),
      );
      const victim = cluster().nodes[listed.findIndex((list) => /name=\S*:inbox /.test(list))];
      expect(victim).toBeDefined();
      const wasMaster = (await cluster().masters()).includes(victim);
      await victim.kill();
      try {
        if (wasMaster) {
          await cluster().waitUntilOk(30_000, false);
        }
        const resets = () => feed.events.filter((e) => e.event === 'reset').length;
        await waitUntil(() => resets() >= 2, 20_000);
        const second = await create(poster);
        await post(poster, second, 1);
        await waitUntil(() =>
          feed.events.some((e) => e.event === 'conversation.updated' && e.data.includes(second)),
        );
      } finally {
        await victim.start();
      }
    } finally {
      feed.close();
    }
  });
});

/** Waits until `done()` holds, for at most `timeoutMs`; fails the test if it never does. */
async function waitUntil(done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) {
      throw new Error('timed out waiting');
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
