import { connect, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type autocannon from 'autocannon';
import type { LoadResult } from './load';
import { percentile } from './stats';

export interface PacedLoadOptions {
  url: string;
  /** As for autocannon: method, headers, body, and setupRequest for each request's path/body. */
  request: autocannon.Request;
  /** Seconds. */
  duration: number;
  /** Keep-alive connections; a request waits for a free one (and that wait is its latency). */
  connections: number;
  /** Requests per second, evenly spaced. */
  rate: number;
  /** Called with every response's latency in milliseconds, from when the request was due. */
  onLatency?: (ms: number) => void;
}

interface Connection {
  socket: Socket;
  /** When the request on it was due (performance.now()), or null when it is free. */
  dueAt: number | null;
  buffer: Buffer;
}

/**
 * An open-loop load at an even pace: request n is due at start + n / rate and goes out on a
 * free keep-alive connection (pipelining 1); its latency runs from when it was due, so a server
 * that falls behind is charged for the wait too (no coordinated omission).
 *
 * Why not autocannon's `overallRate`: it gives each connection a budget per second, which the
 * connection spends as fast as it can at the start of each second (autocannon 8's
 * lib/httpClient.js: `reqsMadeThisSecond`, reset by a 1 s interval). At half a server's
 * speed that is full speed for half of each second, then nothing: a latency "at a fixed rate"
 * measured that way is mostly a latency at full speed. The webhooks suite compares conditions
 * at a fixed rate (a slow endpoint must not cost the posts more than 10%), and needs the rate
 * to be one.
 *
 * The answers are read as our server writes them: a status line, headers with content-length
 * (every route of this server sends one), then that many bytes.
 */
export async function runPacedLoad(options: PacedLoadOptions): Promise<LoadResult> {
  const target = new URL(options.url);
  const port = Number(target.port);
  const host = target.hostname;
  const base = options.request;
  const connections = await Promise.all(
    Array.from({ length: options.connections }, () => open(host, port)),
  );
  const free: Connection[] = [...connections];
  const latencies: number[] = [];
  const statusCodes: Record<string, number> = {};
  let errors = 0;
  let non2xx = 0;
  let sent = 0;
  let completed = 0;

  const requestBytes = (): Buffer => {
    const setup = base.setupRequest
      ? base.setupRequest({ ...base } as autocannon.Request, {} as never)
      : base;
    const request = setup as autocannon.Request;
    const body = request.body === undefined ? '' : String(request.body);
    const headers = { ...(request.headers ?? {}) } as Record<string, string>;
    let head = `${request.method ?? 'GET'} ${request.path ?? '/'} HTTP/1.1\r\nhost: ${host}:${port}\r\n`;
    for (const [name, value] of Object.entries(headers)) {
      head += `${name}: ${value}\r\n`;
    }
    head += `content-length: ${Buffer.byteLength(body)}\r\n\r\n`;
    return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body, 'utf8')]);
  };

  const started = performance.now();
  const stopAt = started + options.duration * 1000;
  const interval = 1000 / options.rate;

  return new Promise<LoadResult>((resolve) => {
    const send = () => {
      const now = performance.now();
      // Every request due by now (and before the end) that a free connection can take.
      while (free.length > 0) {
        const dueAt = started + sent * interval;
        if (dueAt > now || dueAt >= stopAt) {
          break;
        }
        // The longest free first: every connection is used every few ms, so none idles past
        // the server's keep-alive timeout (5 s) and is closed just as a burst needs it.
        const connection = free.shift() as Connection;
        connection.dueAt = dueAt;
        sent++;
        connection.socket.write(requestBytes());
      }
    };
    const answered = (connection: Connection, status: number) => {
      const latency = performance.now() - (connection.dueAt as number);
      connection.dueAt = null;
      completed++;
      latencies.push(latency);
      options.onLatency?.(latency);
      statusCodes[status] = (statusCodes[status] ?? 0) + 1;
      if (status < 200 || status >= 300) {
        non2xx++;
      }
      free.push(connection);
      send();
    };
    for (const connection of connections) {
      connection.socket.on('data', (chunk: Buffer) => {
        connection.buffer =
          connection.buffer.length === 0 ? chunk : Buffer.concat([connection.buffer, chunk]);
        for (;;) {
          const end = connection.buffer.indexOf('\r\n\r\n');
          if (end < 0) {
            return;
          }
          const head = connection.buffer.subarray(0, end).toString('latin1');
          const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
          if (connection.buffer.length < end + 4 + length) {
            return;
          }
          connection.buffer = connection.buffer.subarray(end + 4 + length);
          answered(connection, Number(head.slice(9, 12)));
        }
      });
      connection.socket.on('error', () => {
        errors++;
      });
    }
    const ticker = setInterval(() => {
      send();
      const now = performance.now();
      const inFlight = connections.some((c) => c.dueAt !== null);
      if (now >= stopAt && (!inFlight || now >= stopAt + 10_000)) {
        clearInterval(ticker);
        for (const connection of connections) {
          connection.socket.destroy();
        }
        latencies.sort((a, b) => a - b);
        const seconds = options.duration;
        resolve({
          requests: completed,
          seconds,
          requestsPerSecond: completed / seconds,
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          errors,
          timeouts: sent - completed,
          non2xx,
          statusCodes,
        });
      }
    }, 1);
  });
}

function open(host: string, port: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true }, () =>
      resolve({ socket, dueAt: null, buffer: Buffer.alloc(0) }),
    );
    socket.once('error', reject);
  });
}
