import http from 'node:http';
import net from 'node:net';
import { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { NestExpressApplication } from '@nestjs/platform-express';
import { MetricsService } from '../src/observability/metrics.service';
import { createTestApp } from './utils/create-app';
import { openEventStream } from './utils/event-stream';
import { describeWithRedis, TestRedis } from './utils/redis';

/*
 * Event streams whose client reads slowly or not at all (SSE_MAX_BACKLOG_BYTES): the app runs
 * in this process, so that its heap can be measured after full collections.
 */

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const PAUSED = 10;
const LIMIT = 256 * 1024;
/** Per paused stream: well past what the kernel's socket buffers take on loopback. */
const TRAFFIC_BYTES = 12 * 1024 * 1024;
const CONTENT = 'x'.repeat(10_000);

interface Running {
  app: NestExpressApplication;
  baseUrl: string;
}

async function start(env: Record<string, string>): Promise<Running> {
  const app = await createTestApp({ env });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { app, baseUrl: `http://127.0.0.1:${port}` };
}

/**
 * One request, on `agent`'s kept-alive connections or a connection of its own. Connections are
 * not kept across the tests' pauses (a full GC, opening streams): a connection idle past the
 * server's keep-alive timeout may be closed just as it is reused, which is the client's race,
 * not the server's (a CI run under load failed with ECONNRESET there).
 */
function request(
  running: Running,
  method: string,
  path: string,
  body?: unknown,
  agent: http.Agent | false = false,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${running.baseUrl}${path}`,
      { method, agent, headers: { 'Content-Type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function createConversation(running: Running): Promise<string> {
  const res = await request(running, 'POST', '/api/conversations');
  expect(res.status).toBe(201);
  return (JSON.parse(res.text) as { id: string }).id;
}

/** Posts `count` messages of `content`, four at a time on four kept-alive connections. */
async function post(running: Running, id: string, count: number, content: string): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  let next = 0;
  try {
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        while (next < count) {
          next++;
          const res = await request(
            running,
            'POST',
            `/api/conversations/${id}/messages`,
            { sender: 'customer', content },
            agent,
          );
          expect(res.status).toBe(201);
        }
      }),
    );
  } finally {
    agent.destroy();
  }
}

/**
 * A client that opens the stream, takes its first bytes (the headers) and then reads nothing
 * more: what the server writes fills the sockets' buffers, then waits in the server.
 */
function openPausedStream(running: Running, id: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const { port } = new URL(running.baseUrl);
    const socket = net.connect(Number(port), '127.0.0.1');
    socket.on('error', () => undefined); // cut by the server in the end
    socket.once('connect', () =>
      socket.write(
        `GET /api/conversations/${id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`,
      ),
    );
    socket.once('data', (chunk: Buffer) => {
      if (!chunk.toString('latin1').startsWith('HTTP/1.1 200')) {
        reject(new Error(`not a stream: ${chunk.toString('latin1')}`));
      }
      socket.pause();
      resolve(socket);
    });
  });
}

async function endedForBacklog(running: Running): Promise<number> {
  const metric = running.app
    .get(MetricsService)
    .registry.getSingleMetric('chat_event_streams_backlog_ended_total');
  return (await metric?.get())?.values[0]?.value ?? 0;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function backlogSuite(envOf: () => Record<string, string>): void {
  let running: Running;
  beforeAll(async () => {
    running = await start({
      SSE_MAX_BACKLOG_BYTES: String(LIMIT),
      // Long enough that ended streams still hold what they had unsent when the heap is read.
      SSE_HEARTBEAT_MS: '60000',
      ...envOf(),
    });
  }, 30_000);
  afterAll(async () => {
    await running.app.close();
  });

  it('keeps the stream of a client that reads through a full replay larger than the limit, every change in order', async () => {
    const id = await createConversation(running);
    // 1,000 changes (EVENT_REPLAY_LIMIT) of about 1.2 KB: about five times the limit.
    await post(running, id, 1_000, 'r'.repeat(1_000));
    const stream = await openEventStream(running.baseUrl, `/api/conversations/${id}/events`, {
      'Last-Event-ID': '0',
    });
    await post(running, id, 20, 'live'); // live changes while the replay is written
    const events = await stream.waitForEvents(1_020, 30_000);
    expect(events.map((event) => Number(event.id))).toEqual(
      Array.from({ length: 1_020 }, (_, i) => i + 1),
    );
    await post(running, id, 1, 'after');
    await stream.waitForEvents(1_021);
    expect(await endedForBacklog(running)).toBe(0);
    stream.close();
  }, 60_000);

  it('ends the streams of clients that stop reading, and the heap does not keep their traffic', async () => {
    const messages = Math.ceil(TRAFFIC_BYTES / CONTENT.length);
    // The same traffic with no stream: what the store itself keeps of it.
    const quiet = await createConversation(running);
    const before = heapAfterGc();
    await post(running, quiet, messages, CONTENT);
    const withoutStreams = heapAfterGc() - before;

    const watched = await createConversation(running);
    const sockets: net.Socket[] = [];
    for (let i = 0; i < PAUSED; i++) {
      sockets.push(await openPausedStream(running, watched));
    }
    const ended = await endedForBacklog(running);
    const start = heapAfterGc();
    await post(running, watched, messages, CONTENT);
    for (let i = 0; i < 100 && (await endedForBacklog(running)) < ended + PAUSED; i++) {
      await delay(50);
    }
    const withPausedStreams = heapAfterGc() - start;
    process.stderr.write(
      `heap growth for ${messages} posts of ${CONTENT.length} characters: ` +
        `${withoutStreams} bytes with no stream, ${withPausedStreams} bytes with ${PAUSED} paused streams\n`,
    );
    sockets.forEach((socket) => socket.destroy());

    // What an ended stream still holds is at most the limit (and a frame); the rest is noise.
    expect(withPausedStreams - withoutStreams).toBeLessThan(PAUSED * LIMIT + 8 * 1024 * 1024);
    expect(await endedForBacklog(running)).toBe(ended + PAUSED);
  }, 120_000);
}

describe('Event streams - clients that read slowly or not at all (in memory)', () => {
  backlogSuite(() => ({}));
});

describeWithRedis(
  'Event streams - clients that read slowly or not at all (STORE=redis)',
  (redis) => {
    let testRedis: TestRedis;
    let prefix = '';
    beforeAll(() => {
      testRedis = redis();
      prefix = testRedis.newPrefix();
    });
    backlogSuite(() => ({ STORE: 'redis', REDIS_URL: testRedis.url, REDIS_KEY_PREFIX: prefix }));
  },
);
