import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { fire, runLoad } from '../lib/load';
import { Configuration, RunningServer, startServer } from '../lib/server';
import { median, percentile } from '../lib/stats';

/**
 * The real-time measures: how long a posted message takes to reach every one of many
 * event-stream subscribers (spread over the workers by the cluster), and whether a page of a
 * very long conversation is served as fast as a page of a short one.
 */

export interface RealtimeSettings {
  subscribers: number;
  posts: number;
  postIntervalMs: number;
  longConversation: number;
  pageSeconds: number;
  pageRounds: number;
}

export const FULL_REALTIME: RealtimeSettings = {
  subscribers: 1_000,
  posts: 20,
  postIntervalMs: 100,
  longConversation: 100_000,
  pageSeconds: 4,
  pageRounds: 3,
};

export const QUICK_REALTIME: RealtimeSettings = {
  subscribers: 200,
  posts: 5,
  postIntervalMs: 100,
  longConversation: 5_000,
  pageSeconds: 1,
  pageRounds: 1,
};

export interface FanoutResult {
  configuration: string;
  subscribers: number;
  posts: number;
  /** Deliveries measured: subscribers × posts when none was lost. */
  deliveries: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The same subscribers told of typing signals (alternately true and false, so none is absorbed). */
  typing: { signals: number; deliveries: number; p50Ms: number; p99Ms: number; maxMs: number };
}

export interface PageResult {
  configuration: string;
  longMessages: number;
  longRps: number;
  shortRps: number;
  ratio: number;
}

export interface RealtimeResults {
  fanout: FanoutResult[];
  pages: PageResult | null;
}

async function createConversation(server: RunningServer): Promise<string> {
  const response = await fetch(`${server.baseUrl}/api/conversations`, { method: 'POST' });
  return ((await response.json()) as { id: string }).id;
}

/**
 * One subscriber: records when each event id arrives, and when its n-th typing event (which
 * has no id) arrives.
 */
function subscribe(
  server: RunningServer,
  conversationId: string,
  arrivals: Map<number, number[]>,
  typingArrivals: Map<number, number[]>,
): Promise<http.ClientRequest> {
  let typingSeen = 0;
  return new Promise((resolve, reject) => {
    const request = http.get(
      `${server.baseUrl}/api/conversations/${conversationId}/events`,
      { agent: false },
      (response) => {
        if (response.statusCode !== 200) {
          reject(new Error(`event stream answered ${response.statusCode}`));
          return;
        }
        let buffer = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          const now = performance.now();
          buffer += chunk;
          if (buffer.startsWith(': connected')) {
            resolve(request);
          }
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const id = /^id: (\d+)$/m.exec(block)?.[1];
            if (id) {
              arrivals.get(Number(id))?.push(now);
            } else if (/^event: typing$/m.test(block)) {
              typingArrivals.get(typingSeen++)?.push(now);
            }
          }
        });
      },
    );
    request.on('error', reject);
  });
}

async function fanout(
  configuration: Configuration,
  settings: RealtimeSettings,
  log: (line: string) => void,
): Promise<FanoutResult> {
  const server = await startServer(configuration);
  const streams: http.ClientRequest[] = [];
  try {
    const conversationId = await createConversation(server);
    const arrivals = new Map<number, number[]>();
    for (let seq = 1; seq <= settings.posts; seq++) {
      arrivals.set(seq, []);
    }
    const typingArrivals = new Map<number, number[]>();
    for (let n = 0; n < settings.posts; n++) {
      typingArrivals.set(n, []);
    }
    for (let i = 0; i < settings.subscribers; i += 50) {
      const batch = Math.min(50, settings.subscribers - i);
      streams.push(
        ...(await Promise.all(
          Array.from({ length: batch }, () =>
            subscribe(server, conversationId, arrivals, typingArrivals),
          ),
        )),
      );
    }
    const sentAt = new Map<number, number>();
    for (let i = 0; i < settings.posts; i++) {
      const started = performance.now();
      const response = await fetch(
        `${server.baseUrl}/api/conversations/${conversationId}/messages`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ sender: 'agent', content: `fan-out ${i}` }),
        },
      );
      const { seq } = (await response.json()) as { seq: number };
      sentAt.set(seq, started);
      await new Promise((resolve) => setTimeout(resolve, settings.postIntervalMs));
    }
    // Typing signals, as many as posts: true and false alternately, so none is absorbed by
    // the once-a-second coalescing (a false always goes out and lets the next true through).
    const typingSentAt: number[] = [];
    for (let n = 0; n < settings.posts; n++) {
      typingSentAt.push(performance.now());
      const response = await fetch(`${server.baseUrl}/api/conversations/${conversationId}/typing`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sender: 'agent', typing: n % 2 === 0 }),
      });
      if (response.status !== 204) {
        throw new Error(`typing answered ${response.status}`);
      }
      await new Promise((resolve) => setTimeout(resolve, settings.postIntervalMs));
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const typingLatencies: number[] = [];
    for (const [n, times] of typingArrivals) {
      typingLatencies.push(...times.map((t) => t - typingSentAt[n]));
    }
    typingLatencies.sort((a, b) => a - b);
    const latencies: number[] = [];
    for (const [seq, times] of arrivals) {
      const start = sentAt.get(seq);
      if (start !== undefined) {
        latencies.push(...times.map((t) => t - start));
      }
    }
    latencies.sort((a, b) => a - b);
    const result: FanoutResult = {
      configuration: configuration.label,
      subscribers: settings.subscribers,
      posts: settings.posts,
      deliveries: latencies.length,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: latencies[latencies.length - 1] ?? Number.NaN,
      typing: {
        signals: settings.posts,
        deliveries: typingLatencies.length,
        p50Ms: percentile(typingLatencies, 50),
        p99Ms: percentile(typingLatencies, 99),
        maxMs: typingLatencies[typingLatencies.length - 1] ?? Number.NaN,
      },
    };
    log(
      `[fan-out] ${configuration.label}: ${result.deliveries} deliveries, p50 ${result.p50Ms.toFixed(1)} ms, p99 ${result.p99Ms.toFixed(1)} ms; ` +
        `typing ${result.typing.deliveries} deliveries, p50 ${result.typing.p50Ms.toFixed(1)} ms, p99 ${result.typing.p99Ms.toFixed(1)} ms`,
    );
    return result;
  } finally {
    streams.forEach((stream) => stream.destroy());
    await server.stop();
  }
}

async function pages(
  configuration: Configuration,
  settings: RealtimeSettings,
  log: (line: string) => void,
): Promise<PageResult> {
  const server = await startServer({
    ...configuration,
    env: {
      ...configuration.env,
      MAX_MESSAGES_PER_CONVERSATION: String(settings.longConversation),
    },
  });
  try {
    const [long, short] = [await createConversation(server), await createConversation(server)];
    const seed = (id: string, amount: number) =>
      fire(server.baseUrl, amount, {
        method: 'POST',
        path: `/api/conversations/${id}/messages`,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sender: 'customer', content: 'x'.repeat(100) }),
      });
    log(`[pages] seeding ${settings.longConversation} messages`);
    await seed(long, settings.longConversation);
    await seed(short, 50);
    const measure = async (path: string) =>
      (
        await runLoad({
          url: server.baseUrl,
          duration: settings.pageSeconds,
          connections: 50,
          requests: [{ method: 'GET', path }],
        })
      ).requestsPerSecond;
    const longPath = `/api/conversations/${long}/messages?after=${settings.longConversation / 2}&limit=50`;
    const shortPath = `/api/conversations/${short}/messages?after=0&limit=50`;
    await measure(longPath); // warm-up
    const longRuns: number[] = [];
    const shortRuns: number[] = [];
    for (let round = 0; round < settings.pageRounds; round++) {
      longRuns.push(await measure(longPath));
      shortRuns.push(await measure(shortPath));
    }
    const result: PageResult = {
      configuration: configuration.label,
      longMessages: settings.longConversation,
      longRps: median(longRuns),
      shortRps: median(shortRuns),
      ratio: median(longRuns) / median(shortRuns),
    };
    log(
      `[pages] ${configuration.label}: long ${Math.round(result.longRps)} req/s, short ${Math.round(result.shortRps)} req/s, ratio ${result.ratio.toFixed(2)}`,
    );
    return result;
  } finally {
    await server.stop();
  }
}

/**
 * Fan-out in every given configuration that forks workers (but those marked HTTP-only); pages
 * in the first of them.
 */
export async function runRealtimeSuite(
  configurations: Configuration[],
  settings: RealtimeSettings,
  log: (line: string) => void,
): Promise<RealtimeResults> {
  const clustered = configurations.filter((c) => c.workers > 0 && !c.httpOnly);
  const fanoutResults: FanoutResult[] = [];
  for (const configuration of clustered) {
    fanoutResults.push(await fanout(configuration, settings, log));
  }
  const pageResult = clustered[0] ? await pages(clustered[0], settings, log) : null;
  return { fanout: fanoutResults, pages: pageResult };
}

export function realtimeMarkdown(results: RealtimeResults): string[] {
  const lines = [
    '### Real-time: delivery to event-stream subscribers, and pages',
    '',
    '| Configuration | event | subscribers | sent | deliveries | p50 ms | p99 ms | max ms |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...results.fanout.flatMap((r) => [
      `| ${r.configuration} | message.created | ${r.subscribers} | ${r.posts} | ${r.deliveries} | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${r.maxMs.toFixed(1)} |`,
      `| ${r.configuration} | typing | ${r.subscribers} | ${r.typing.signals} | ${r.typing.deliveries} | ${r.typing.p50Ms.toFixed(1)} | ${r.typing.p99Ms.toFixed(1)} | ${r.typing.maxMs.toFixed(1)} |`,
    ]),
    '',
    'Latency: from just before the POST (a message, or a typing signal) is sent to the event arriving at a subscriber (all subscribers in the runner process, on their own connections, shared out by the cluster).',
  ];
  if (results.pages) {
    const p = results.pages;
    lines.push(
      '',
      `Pages (${p.configuration}): a page of 50 from a ${p.longMessages.toLocaleString('en-US')}-message conversation ${Math.round(p.longRps)} req/s, from a 50-message one ${Math.round(p.shortRps)} req/s: ratio ${p.ratio.toFixed(2)}.`,
    );
  }
  return lines;
}
