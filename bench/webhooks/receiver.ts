import { AddressInfo, createServer, Server, Socket } from 'node:net';

/**
 * The webhook receivers of the webhooks benchmark, in a process of their own (started by
 * webhook-suite.ts with an IPC channel): in the bench's process they would share an event
 * loop with autocannon, and a receiver that waits for the load generator, or a load generator
 * that waits for the receiver, would skew both the lag and the throughput.
 *
 * Two HTTP/1.1 receivers on 127.0.0.1: "responsive" answers 204 as soon as a request's body is
 * in; "slow" answers 204 only after `argv[2]` ms (longer than the server's WEBHOOK_TIMEOUT_MS,
 * so the server gives up on every attempt first). Every request is recorded by its URL path
 * (one per endpoint and run), with the time its body was in; the suite asks for the delivery
 * lag of the message.created events over IPC.
 *
 * They read HTTP off node:net themselves rather than through node:http: on a real deployment
 * the receivers run on other machines, and here they share the server's two cores, so every
 * microsecond they spend is taken from the server being measured. node:http cost them 28-35
 * us of CPU per delivery at full speed, this 21-28 (docs/performance.md). They take what the
 * server sends: a request line, headers with a Content-Length, no pipelining needed (the
 * server waits for each answer); anything else (a chunked body, a bad length, a head past
 * 16 KiB) is answered 400 and the connection closed, and counted as `malformed`.
 *
 * Messages in: `{ kind: 'stats', ask, path, since, expected }` and `{ kind: 'clear', ask }`.
 * Out: `{ kind: 'ready', responsivePort, slowPort }`, then one answer per ask.
 */

interface Received {
  id: string;
  type: string;
  /** The event body's `timestamp` (the change's time), ms. */
  changedAt: number;
  /** Date.now() once the body was in. */
  at: number;
}

export interface ReceiverStats {
  /** Requests to the path (every attempt, every type). */
  requests: number;
  /** message.created events whose change is at or after `since`, each id counted once. */
  delivered: number;
  /** Further requests carrying an id already received (any type). */
  duplicates: number;
  /**
   * Delivery lag (first receipt − the change's time) over `max(expected, delivered)` events,
   * the ones not received counting as endless (null): p50, p99 and max in ms.
   */
  lagP50Ms: number | null;
  lagP99Ms: number | null;
  lagMaxMs: number | null;
  /** Date.now() of the last request to the path (0: none). */
  lastAt: number;
  /** Requests to either receiver it could not read (answered 400): 0 unless the server errs. */
  malformed: number;
}

export type ReceiverRequest =
  | { kind: 'stats'; ask: number; path: string; since: number; expected: number }
  | { kind: 'clear'; ask: number };

const byPath = new Map<string, Received[]>();
let malformed = 0;

function record(path: string, id: string, body: string): void {
  let type = '';
  let changedAt = Number.NaN;
  try {
    const event = JSON.parse(body) as { type?: unknown; timestamp?: unknown };
    type = String(event.type ?? '');
    changedAt = Date.parse(String(event.timestamp ?? ''));
  } catch {
    // not JSON: recorded, counted as no event type
  }
  const list = byPath.get(path) ?? [];
  byPath.set(path, list);
  list.push({
    id,
    type,
    changedAt,
    at: Date.now(),
  });
}

/** Nearest rank, as bench/lib/stats.ts; Infinity stands for an event not received. */
const rank = (sorted: number[], p: number): number | null => {
  if (sorted.length === 0) {
    return null;
  }
  const value = sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  return Number.isFinite(value) ? value : null;
};

function stats(path: string, since: number, expected: number): ReceiverStats {
  const list = byPath.get(path) ?? [];
  const seen = new Set<string>();
  const lags: number[] = [];
  let duplicates = 0;
  for (const got of list) {
    if (seen.has(got.id)) {
      duplicates++;
      continue;
    }
    seen.add(got.id);
    if (got.type === 'message.created' && got.changedAt >= since) {
      lags.push(got.at - got.changedAt);
    }
  }
  const delivered = lags.length;
  for (let i = delivered; i < expected; i++) {
    lags.push(Number.POSITIVE_INFINITY);
  }
  lags.sort((a, b) => a - b);
  return {
    requests: list.length,
    delivered,
    duplicates,
    lagP50Ms: rank(lags, 50),
    lagP99Ms: rank(lags, 99),
    lagMaxMs: rank(lags, 100),
    lastAt: list.length > 0 ? list[list.length - 1].at : 0,
    malformed,
  };
}

const NO_CONTENT = Buffer.from('HTTP/1.1 204 No Content\r\n\r\n', 'latin1');
const BAD_REQUEST = Buffer.from(
  'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
  'latin1',
);
const MAX_HEAD_BYTES = 16 * 1024;

/** One request's head: its path, its webhook-id, its body's length (-1: unreadable). */
function readHead(head: string): { path: string; id: string; length: number } {
  const lines = head.split('\r\n');
  const [method, path, version] = lines[0].split(' ');
  let length = -1;
  let id = '';
  let unreadable = method !== 'POST' || !path || !version?.startsWith('HTTP/1.');
  for (let i = 1; i < lines.length && !unreadable; i++) {
    const colon = lines[i].indexOf(':');
    const name = lines[i].slice(0, colon).toLowerCase();
    const value = lines[i].slice(colon + 1).trim();
    if (colon <= 0 || name === 'transfer-encoding') {
      unreadable = true;
    } else if (name === 'content-length') {
      unreadable = length >= 0 || !/^\d{1,9}$/.test(value);
      length = Number(value);
    } else if (name === 'webhook-id') {
      id = value;
    }
  }
  return { path: path ?? '/', id, length: unreadable ? -1 : Math.max(length, 0) };
}

function serve(socket: Socket, delayMs: number, timers: Set<NodeJS.Timeout>): void {
  socket.setNoDelay(true);
  let pending: Buffer | null = null;
  let timer: NodeJS.Timeout | undefined;
  socket.on('data', (chunk: Buffer) => {
    pending = pending === null ? chunk : Buffer.concat([pending, chunk]);
    while (pending !== null) {
      const end: number = pending.indexOf('\r\n\r\n');
      if (end < 0 && pending.length <= MAX_HEAD_BYTES) {
        return;
      }
      const head = end < 0 ? null : readHead(pending.toString('latin1', 0, end));
      if (head === null || head.length < 0) {
        malformed++;
        socket.end(BAD_REQUEST);
        pending = null;
        return;
      }
      const bodyEnd: number = end + 4 + head.length;
      if (pending.length < bodyEnd) {
        return;
      }
      record(head.path, head.id, pending.toString('utf8', end + 4, bodyEnd));
      pending = pending.length === bodyEnd ? null : pending.subarray(bodyEnd);
      if (delayMs === 0) {
        socket.write(NO_CONTENT);
        continue;
      }
      // The server gives up first and closes the connection: then there is no one to answer.
      timer = setTimeout(() => {
        timers.delete(timer as NodeJS.Timeout);
        if (!socket.destroyed) {
          socket.write(NO_CONTENT);
        }
      }, delayMs);
      timers.add(timer);
    }
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timers.delete(timer);
    }
  });
}

function listen(delayMs: number): Promise<Server> {
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((socket) => serve(socket, delayMs, timers));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function main(): Promise<void> {
  const slowDelayMs = Number(process.argv[2] ?? '3000');
  const responsive = await listen(0);
  const slow = await listen(slowDelayMs);
  process.on('message', (message: ReceiverRequest) => {
    if (message.kind === 'clear') {
      byPath.clear();
      malformed = 0;
      process.send?.({ kind: 'clear', ask: message.ask });
    } else {
      process.send?.({
        kind: 'stats',
        ask: message.ask,
        ...stats(message.path, message.since, message.expected),
      });
    }
  });
  // The bench went away: so does this process.
  process.on('disconnect', () => process.exit(0));
  process.send?.({
    kind: 'ready',
    responsivePort: (responsive.address() as AddressInfo).port,
    slowPort: (slow.address() as AddressInfo).port,
  });
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
