import net from 'node:net';
import { SCENARIOS, seed } from '../http/scenarios';
import { pinLoadGenerator } from '../lib/cpu-pinning';
import { runLoad } from '../lib/load';
import { Configuration, RunningServer, startServer } from '../lib/server';
import { percentile, sleep } from '../lib/stats';

/**
 * Issue 29's stream-backlog rule, its speed half: post latency with 10 event streams whose
 * client has stopped reading stays within 10% of post latency with no stream at all.
 *
 * Three servers of one configuration are up at once (as in http/paired-suite.ts): "none" with
 * no event stream, "paused" with 10 paused streams on the conversation the posts go to, so
 * that every post is a frame for each of them, and "reading" with 10 streams there whose
 * client reads (what the frames cost without a backlog: a figure, not the target). All get
 * the same posts at the same fixed rate, in slices that alternate between them, so that a
 * drift of the VM's speed hits all; each condition's p50 and p99 are taken over all its
 * responses. A paused stream that the server ends (past SSE_MAX_BACKLOG_BYTES unsent) is
 * replaced before the next slice, so that every slice runs with 10.
 */

export interface BacklogSettings {
  /** At full speed, on each server, before anything is measured. */
  warmupSeconds: number;
  /** At full speed on "none": the fixed rate is half of what it reaches. */
  maxSeconds: number;
  /** Slices per condition; they go none reading paused, paused reading none, ... */
  slices: number;
  /** Whole seconds: autocannon paces a fixed rate per second, in a burst at each second's start. */
  sliceSeconds: number;
  connections: number;
}

export const FULL_BACKLOG: BacklogSettings = {
  warmupSeconds: 3,
  maxSeconds: 3,
  slices: 10,
  sliceSeconds: 3,
  connections: 50,
};

export const QUICK_BACKLOG: BacklogSettings = {
  warmupSeconds: 1,
  maxSeconds: 1.5,
  slices: 4,
  sliceSeconds: 2,
  connections: 50,
};

export const PAUSED_STREAMS = 10;
/** The target: p99 with the paused streams at most this times p99 with none. */
export const MAX_PAUSED_P99_RATIO = 1.1;

/**
 * For both servers. The posts all go to one conversation, far past the default cap of 10,000
 * messages. A paused stream is to pass its limit several times within the run, after the
 * megabytes that its socket's kernel buffers take on loopback: a quarter of the default
 * limit (4 MiB).
 */
const ENV: Record<string, string> = {
  MAX_MESSAGES_PER_CONVERSATION: '1000000',
  SSE_MAX_BACKLOG_BYTES: String(1024 * 1024),
};

export interface ConditionResult {
  requests: number;
  p50Ms: number;
  p99Ms: number;
  /** Requests not answered 2xx, errors and timeouts, over all slices. */
  failed: number;
}

export interface BacklogResult {
  configuration: string;
  maxBacklogBytes: number;
  /** What "none" reached at full speed, and the fixed rate (half of it) of every slice. */
  maxRequestsPerSecond: number;
  rate: number;
  slices: number;
  sliceSeconds: number;
  none: ConditionResult;
  /** 10 streams whose client reads. */
  reading: ConditionResult;
  paused: ConditionResult;
  /** paused p99 / none p99 over all slices. */
  ratio: number;
  /** The same, slice pair by slice pair: how steady it was. */
  sliceRatios: number[];
  /** Paused streams opened in all (10, and one for each the server ended before a slice). */
  streamsOpened: number;
  /** Of those, ended by the server for their backlog (chat_event_streams_backlog_ended_total). */
  streamsEnded: number;
  pinned: boolean;
  /** Why not to judge by it (a failed request, a server gone), if so. */
  invalid?: string;
}

/**
 * A client that sends the stream's request on a raw loopback socket, takes the response's
 * first bytes and then reads nothing more (`paused`), or reads and drops everything.
 */
function openStream(
  server: RunningServer,
  conversationId: string,
  paused: boolean,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, '127.0.0.1');
    socket.once('error', reject);
    socket.once('connect', () =>
      socket.write(
        `GET /api/conversations/${conversationId}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`,
      ),
    );
    socket.once('data', (chunk: Buffer) => {
      if (paused) {
        socket.pause();
      } else {
        socket.resume();
      }
      socket.off('error', reject);
      socket.on('error', () => undefined); // cut by the server in the end
      if (chunk.toString('latin1').startsWith('HTTP/1.1 200')) {
        resolve(socket);
      } else {
        socket.destroy();
        reject(new Error(`not an event stream: ${chunk.toString('latin1').split('\r\n')[0]}`));
      }
    });
  });
}

async function endedForBacklog(server: RunningServer): Promise<number> {
  const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
  const match = /^chat_event_streams_backlog_ended_total(?:\{[^}]*\})? (\d+)/m.exec(text);
  if (!match) {
    throw new Error('GET /metrics has no chat_event_streams_backlog_ended_total');
  }
  return Number(match[1]);
}

interface Side {
  server: RunningServer;
  latencies: number[];
  requests: number;
  failed: number;
}

function summary(side: Side): ConditionResult {
  const sorted = side.latencies.sort((a, b) => a - b);
  return {
    requests: side.requests,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    failed: side.failed,
  };
}

export async function runBacklogSuite(
  configuration: Configuration,
  settings: BacklogSettings,
  log: (line: string) => void,
): Promise<BacklogResult> {
  const post = SCENARIOS.find((s) => s.key === 'post');
  if (!post) {
    throw new Error('no post scenario');
  }
  const withLimit = { ...configuration, env: { ...configuration.env, ...ENV } };
  const pinning = configuration.workers === 0 ? pinLoadGenerator() : null;
  const servers: RunningServer[] = [];
  const sockets: net.Socket[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      servers.push(await startServer(withLimit, undefined, pinning ?? undefined));
    }
    const [none, reading, paused] = servers.map((server): Side => ({
      server,
      latencies: [],
      requests: 0,
      failed: 0,
    }));
    // On each, the first of its 1,000 seeded conversations.
    const watched = new Map<RunningServer, string>();
    for (const server of servers) {
      watched.set(server, (await seed(server.baseUrl, post.seed)).conversations[0]);
    }
    const load = (side: Side, seconds: number, overallRate?: number, record = false) =>
      runLoad({
        url: side.server.baseUrl,
        requests: post.requests({
          conversations: [watched.get(side.server) ?? ''],
          small: [],
          large: '',
          plain: [],
        }),
        duration: seconds,
        connections: settings.connections,
        overallRate,
        ...(record ? { onLatency: (ms: number) => side.latencies.push(ms) } : {}),
      });
    for (const side of [none, reading, paused]) {
      await load(side, settings.warmupSeconds);
    }
    for (let i = 0; i < PAUSED_STREAMS; i++) {
      sockets.push(await openStream(reading.server, watched.get(reading.server) ?? '', false));
    }
    const max = await load(none, settings.maxSeconds);
    const rate = Math.max(1, Math.floor(max.requestsPerSecond / 2));
    log(
      `[backlog] ${configuration.key}: ${Math.round(max.requestsPerSecond)} posts/s at most; slices at ${rate}/s`,
    );

    const endedAtStart = await endedForBacklog(paused.server);
    let opened = 0;
    /** Tops the paused server up to 10 streams not ended. */
    const replenish = async () => {
      const live = opened - ((await endedForBacklog(paused.server)) - endedAtStart);
      for (let i = live; i < PAUSED_STREAMS; i++) {
        sockets.push(await openStream(paused.server, watched.get(paused.server) ?? '', true));
        opened++;
      }
    };
    const slice = async (side: Side) => {
      if (side === paused) {
        await replenish();
      }
      const before = side.latencies.length;
      const result = await load(side, settings.sliceSeconds, rate, true);
      side.requests += result.requests;
      side.failed += result.errors + result.timeouts + result.non2xx;
      return percentile(
        side.latencies.slice(before).sort((a, b) => a - b),
        99,
      );
    };
    const sliceRatios: number[] = [];
    for (let i = 0; i < settings.slices; i++) {
      // none reading paused, then paused reading none: neither always goes first.
      const order = i % 2 === 0 ? [none, reading, paused] : [paused, reading, none];
      const p99s = new Map<Side, number>();
      for (const side of order) {
        p99s.set(side, await slice(side));
      }
      sliceRatios.push((p99s.get(paused) ?? NaN) / (p99s.get(none) ?? NaN));
    }
    await sleep(200);
    const streamsEnded = (await endedForBacklog(paused.server)) - endedAtStart;

    const invalid: string[] = [];
    for (const [name, side] of [
      ['none', none],
      ['reading', reading],
      ['paused', paused],
    ] as const) {
      if (side.failed > 0) {
        invalid.push(`${name}: ${side.failed} requests failed`);
      }
      if (side.server.pids().length === 0) {
        invalid.push(`${name}: the server is gone`);
      }
    }
    const result: BacklogResult = {
      configuration: configuration.label,
      maxBacklogBytes: Number(ENV.SSE_MAX_BACKLOG_BYTES),
      maxRequestsPerSecond: max.requestsPerSecond,
      rate,
      slices: settings.slices,
      sliceSeconds: settings.sliceSeconds,
      none: summary(none),
      reading: summary(reading),
      paused: summary(paused),
      ratio: 0,
      sliceRatios,
      streamsOpened: opened,
      streamsEnded,
      pinned: pinning !== null,
      ...(invalid.length > 0 ? { invalid: invalid.join('; ') } : {}),
    };
    result.ratio = result.paused.p99Ms / result.none.p99Ms;
    log(
      `[backlog] ${configuration.key}: post p99 ${result.paused.p99Ms.toFixed(2)} ms with ${PAUSED_STREAMS} paused streams, ` +
        `${result.none.p99Ms.toFixed(2)} ms with none: ${result.ratio.toFixed(3)} ` +
        `(${result.reading.p99Ms.toFixed(2)} ms with ${PAUSED_STREAMS} reading) ` +
        `(slices ${Math.min(...sliceRatios).toFixed(2)}–${Math.max(...sliceRatios).toFixed(2)}); ` +
        `${streamsEnded} of ${opened} paused streams ended${result.invalid ? `; INVALID: ${result.invalid}` : ''}`,
    );
    return result;
  } finally {
    pinning?.release();
    sockets.forEach((socket) => socket.destroy());
    for (const server of servers) {
      await server.stop();
    }
  }
}

export function backlogMarkdown(r: BacklogResult): string[] {
  const row = (name: string, c: ConditionResult) =>
    `| ${name} | ${c.requests} | ${c.p50Ms.toFixed(2)} | ${c.p99Ms.toFixed(2)} | ${c.failed} |`;
  return [
    `### Posts with paused event streams (${r.configuration}${r.pinned ? ', pinned' : ''})`,
    '',
    '| Condition | posts | p50 ms | p99 ms | failed |',
    '| --- | --- | --- | --- | --- |',
    row('no event stream', r.none),
    row(`${PAUSED_STREAMS} event streams read (a figure)`, r.reading),
    row(`${PAUSED_STREAMS} paused event streams`, r.paused),
    '',
    `Three servers up at once, 100-character posts to one conversation (the streams' one) at ${r.rate} req/s (half of ${Math.round(r.maxRequestsPerSecond)}), ` +
      `${r.slices} slices of ${r.sliceSeconds} s each, alternating. p99 paused / none: ${r.ratio.toFixed(3)} ` +
      `(per slice pair ${Math.min(...r.sliceRatios).toFixed(2)}–${Math.max(...r.sliceRatios).toFixed(2)}). ` +
      `SSE_MAX_BACKLOG_BYTES=${r.maxBacklogBytes}: ${r.streamsEnded} of the ${r.streamsOpened} paused streams opened were ended by the server.`,
  ];
}
