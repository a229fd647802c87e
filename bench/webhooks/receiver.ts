import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';

/**
 * The webhook receivers of the webhooks benchmark, in a process of their own (started by
 * webhook-suite.ts with an IPC channel): in the bench's process they would share an event
 * loop with autocannon, and a receiver that waits for the load generator, or a load generator
 * that waits for the receiver, would skew both the lag and the throughput.
 *
 * Two node:http servers on 127.0.0.1: "responsive" answers 204 as soon as a request's body is
 * in; "slow" answers 204 only after `argv[2]` ms (longer than the server's WEBHOOK_TIMEOUT_MS,
 * so the server gives up on every attempt first). Every request is recorded by its URL path
 * (one per endpoint and run), with the time its body was in; the suite asks for the delivery
 * lag of the message.created events over IPC.
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
}

export type ReceiverRequest =
  | { kind: 'stats'; ask: number; path: string; since: number; expected: number }
  | { kind: 'clear'; ask: number };

const byPath = new Map<string, Received[]>();

function record(request: IncomingMessage, body: string): void {
  const path = request.url ?? '/';
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
    id: String(request.headers['webhook-id'] ?? ''),
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
  };
}

function listen(delayMs: number): Promise<Server> {
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      record(request, Buffer.concat(chunks).toString('utf8'));
      if (delayMs === 0) {
        response.writeHead(204).end();
        return;
      }
      // The server gives up first and closes the connection: then there is no one to answer.
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!response.destroyed) {
          response.writeHead(204).end();
        }
      }, delayMs);
      timers.add(timer);
      response.once('close', () => {
        clearTimeout(timer);
        timers.delete(timer);
      });
    });
  });
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
