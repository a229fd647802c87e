// Fast path: mirrors node@26.12.1 node:http's client (http.request and https.request through
// a keep-alive Agent, as HttpWebhookSender made its attempts: the request's bytes, the answer's
// status and Retry-After, keep-alive reuse, the error codes). Held equal by
// src/http/fast-path/http1-client.spec.ts.

import * as net from 'node:net';
import * as tls from 'node:tls';

/**
 * A minimal HTTP/1.1 client for one request shape: a POST with a small body, whose answer is
 * only read for its status, its Retry-After and at most `maxBodyBytes` of its body. A webhook
 * attempt through node:http costs a ClientRequest, an IncomingMessage, the agent's bookkeeping
 * and their events; here it is one write and a parse of the answer's head (docs/performance.md,
 * "A cheaper attempt", has the measures). Connections are kept alive per origin, as node's
 * Agent keeps them (most recently freed first, at most `maxSockets` per origin, the rest
 * waiting), and closed when idle for the server's Keep-Alive hint less a second (node's rule)
 * or IDLE_MS without one. A new TLS connection offers its origin's last session, as
 * https.Agent does (at most MAX_CACHED_SESSIONS origins).
 */

export interface Http1Origin {
  secure: boolean;
  /** Hostname or address, an IPv6 one without brackets. */
  host: string;
  port: number;
}

export interface Http1Answer {
  statusCode: number;
  /** The first Retry-After header, if any. */
  retryAfter: string | undefined;
}

export interface Http1ClientOptions {
  /** Resolves (and may refuse) the hostname when connecting, as an Agent's `lookup`. */
  lookup: net.LookupFunction;
  /** Connections per origin at once; more requests wait for one. */
  maxSockets: number;
  /** How much of an answer's body is read: past it the answer counts as in, the socket goes. */
  maxBodyBytes: number;
  /** Certificates trusted besides the system's, as the `ca` of https.request (tests). */
  ca?: string;
}

/** Ends an exchange: the error (an Error with node's `code` where node has one) or the answer. */
export type Http1Callback = (error: Error | null, answer?: Http1Answer) => void;

/** TLS sessions kept for resumption, one per origin, as https.Agent's maxCachedSessions. */
const MAX_CACHED_SESSIONS = 100;
/** Idle connections without a Keep-Alive hint close after this (ms). */
const IDLE_MS = 4_000;
/** node's default --max-http-header-size. */
const MAX_HEAD_BYTES = 16 * 1024;
const USER_AGENT = 'chat-server-webhooks/1';
/** Characters node refuses in a request path (ERR_UNESCAPED_CHARACTERS). */
const INVALID_PATH = /[^\u0021-\u00ff]/;

function codeError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** A request made: cancelling destroys its connection, and its callback is not called. */
export interface Http1Request {
  cancel(): void;
  /** The answer's status once its head is in, else null (what a timeout saw). */
  readonly statusCode: number | null;
}

/** A request not yet on a connection, or on one. */
class Exchange implements Http1Request {
  connection: Connection | null = null;
  cancelled = false;
  statusCode: number | null = null;
  retryAfter: string | undefined;

  constructor(
    readonly text: string,
    readonly done: Http1Callback,
    private readonly pool: Pool,
  ) {}

  cancel(): void {
    if (this.cancelled) {
      return;
    }
    this.cancelled = true;
    if (this.connection) {
      this.connection.destroy();
    } else {
      const at = this.pool.waiting.indexOf(this);
      if (at >= 0) {
        this.pool.waiting.splice(at, 1);
      }
    }
  }
}

/** Where the parse of an answer stands. */
enum Stage {
  Head,
  Fixed,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  UntilClose,
}

class Connection {
  private exchange: Exchange | null = null;
  private stage = Stage.Head;
  private keepAlive = true;
  private idleMs = IDLE_MS;
  /** Body bytes still expected (Fixed, ChunkData). */
  private remaining = 0;
  private bodyBytes = 0;
  private pending = '';
  private idleTimer: NodeJS.Timeout | null = null;
  closed = false;

  constructor(
    readonly socket: net.Socket,
    private readonly pool: Pool,
    private readonly maxBodyBytes: number,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error: Error) => this.fail(error));
    socket.on('close', () => {
      if (this.exchange && this.stage === Stage.UntilClose) {
        // A body delimited by the connection's end is complete when it closes.
        this.complete(false);
      } else {
        this.fail(codeError('socket hang up', 'ECONNRESET'));
      }
    });
  }

  start(exchange: Exchange): void {
    this.clearIdle();
    this.exchange = exchange;
    exchange.connection = this;
    this.stage = Stage.Head;
    this.keepAlive = true;
    this.idleMs = IDLE_MS;
    this.bodyBytes = 0;
    this.pending = '';
    this.socket.write(exchange.text);
  }

  /** Idle in the pool: closed after idleMs, or at once by anything the server sends. */
  idle(): void {
    this.idleTimer = setTimeout(() => this.destroy(), this.idleMs);
    this.idleTimer.unref();
  }

  destroy(): void {
    if (!this.closed) {
      this.closed = true;
      this.clearIdle();
      this.pool.gone(this);
      this.socket.destroy();
    }
  }

  private clearIdle(): void {
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
  }

  /** The socket failed or closed: the exchange on it (if any, not cancelled) ends with `error`. */
  private fail(error: Error): void {
    const exchange = this.exchange;
    this.exchange = null;
    this.destroy();
    if (exchange && !exchange.cancelled) {
      exchange.done(error);
    }
  }

  /**
   * The answer is in: the connection is kept (or closed) first, then the answer handed over,
   * so that an attempt started from `done` finds the connection free, as node's Agent does.
   */
  private complete(reusable: boolean): void {
    const exchange = this.exchange!;
    this.exchange = null;
    const answer: Http1Answer = {
      statusCode: exchange.statusCode!,
      retryAfter: exchange.retryAfter,
    };
    if (reusable && this.keepAlive && this.pending.length === 0 && this.idleMs > 0) {
      this.pool.release(this);
    } else {
      this.destroy();
    }
    if (!exchange.cancelled) {
      exchange.done(null, answer);
    }
  }

  private onData(chunk: Buffer): void {
    if (!this.exchange) {
      // Nothing was asked: a server that talks out of turn loses the connection.
      this.destroy();
      return;
    }
    // latin1 keeps one character per byte, so lengths below are byte counts.
    this.pending += chunk.toString('latin1');
    try {
      while (this.exchange && this.pending.length > 0 && this.step()) {
        // each step consumed something
      }
    } catch (error) {
      this.fail(error as Error);
    }
  }

  /** Parses what it can of `pending`; false when it needs more bytes. */
  private step(): boolean {
    switch (this.stage) {
      case Stage.Head: {
        const end = this.pending.indexOf('\r\n\r\n');
        if (end < 0) {
          if (this.pending.length > MAX_HEAD_BYTES) {
            throw codeError('Header overflow', 'HPE_HEADER_OVERFLOW');
          }
          return false;
        }
        if (end > MAX_HEAD_BYTES) {
          throw codeError('Header overflow', 'HPE_HEADER_OVERFLOW');
        }
        const head = this.pending.slice(0, end);
        this.pending = this.pending.slice(end + 4);
        this.readHead(head);
        return true;
      }
      case Stage.Fixed: {
        if (this.takeBody()) {
          return false;
        }
        if (this.remaining === 0) {
          this.complete(true);
          return false;
        }
        return true;
      }
      case Stage.ChunkSize: {
        const end = this.pending.indexOf('\r\n');
        if (end < 0) {
          if (this.pending.length > 1024) {
            throw codeError('Invalid character in chunk size', 'HPE_INVALID_CHUNK_SIZE');
          }
          return false;
        }
        const line = this.pending.slice(0, end);
        this.pending = this.pending.slice(end + 2);
        const size = /^([0-9A-Fa-f]{1,8})[ \t]*(?:;.*)?$/.exec(line);
        if (!size) {
          throw codeError('Invalid character in chunk size', 'HPE_INVALID_CHUNK_SIZE');
        }
        this.remaining = parseInt(size[1], 16);
        this.stage = this.remaining === 0 ? Stage.Trailers : Stage.ChunkData;
        return true;
      }
      case Stage.ChunkData: {
        if (this.takeBody()) {
          return false;
        }
        if (this.remaining === 0) {
          this.stage = Stage.ChunkDataEnd;
        }
        return true;
      }
      case Stage.ChunkDataEnd: {
        if (this.pending.length < 2) {
          return false;
        }
        if (!this.pending.startsWith('\r\n')) {
          throw codeError('Expected LF after chunk data', 'HPE_STRICT');
        }
        this.pending = this.pending.slice(2);
        this.stage = Stage.ChunkSize;
        return true;
      }
      case Stage.Trailers: {
        if (this.pending.startsWith('\r\n')) {
          this.pending = this.pending.slice(2);
          this.complete(true);
          return false;
        }
        const end = this.pending.indexOf('\r\n\r\n');
        if (end < 0) {
          if (this.pending.length > MAX_HEAD_BYTES) {
            throw codeError('Header overflow', 'HPE_HEADER_OVERFLOW');
          }
          return false;
        }
        this.pending = this.pending.slice(end + 4);
        this.complete(true);
        return false;
      }
      case Stage.UntilClose: {
        const take = this.pending.length;
        this.pending = '';
        this.body(take);
        return false;
      }
    }
  }

  /** Takes up to `remaining` bytes of body; true when the answer ended meanwhile (the cap). */
  private takeBody(): boolean {
    const take = Math.min(this.remaining, this.pending.length);
    this.pending = this.pending.slice(take);
    this.remaining -= take;
    return this.body(take);
  }

  /** Counts body bytes; true when past maxBodyBytes, the answer then counts as in. */
  private body(bytes: number): boolean {
    this.bodyBytes += bytes;
    if (this.bodyBytes > this.maxBodyBytes) {
      this.complete(false);
      return true;
    }
    return false;
  }

  private readHead(head: string): void {
    const lines = head.split('\r\n');
    const status = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0]);
    if (!status) {
      // llhttp's codes for the same faults.
      if (!lines[0].startsWith('HTTP/')) {
        throw codeError('Expected HTTP/', 'HPE_INVALID_CONSTANT');
      }
      if (!/^HTTP\/1\.[01] /.test(lines[0])) {
        throw codeError('Invalid HTTP version', 'HPE_INVALID_VERSION');
      }
      throw codeError('Invalid status code', 'HPE_INVALID_STATUS');
    }
    const statusCode = Number(status[2]);
    let contentLength: number | null = null;
    let chunked = false;
    let transferEncoding = false;
    let connection = '';
    let keepAliveHint: string | undefined;
    let retryAfter: string | undefined;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      const colon = line.indexOf(':');
      if (colon <= 0) {
        throw codeError('Invalid header token', 'HPE_INVALID_HEADER_TOKEN');
      }
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'content-length') {
        if (!/^\d+$/.test(value) || (contentLength !== null && contentLength !== Number(value))) {
          throw codeError('Invalid Content-Length', 'HPE_UNEXPECTED_CONTENT_LENGTH');
        }
        contentLength = Number(value);
      } else if (name === 'transfer-encoding') {
        transferEncoding = true;
        chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
      } else if (name === 'connection') {
        connection += `${value.toLowerCase()},`;
      } else if (name === 'keep-alive') {
        keepAliveHint ??= value;
      } else if (name === 'retry-after') {
        retryAfter ??= value;
      }
    }
    if (statusCode >= 100 && statusCode < 200 && statusCode !== 101) {
      // 100 Continue, 102, 103 Early Hints: informational, the answer follows.
      return;
    }
    if (transferEncoding && contentLength !== null) {
      throw codeError('Transfer-Encoding with Content-Length', 'HPE_INVALID_TRANSFER_ENCODING');
    }
    this.exchange!.statusCode = statusCode;
    this.exchange!.retryAfter = retryAfter;
    this.keepAlive =
      status[1] === '1' ? !/(?:^|,)\s*close\s*,/.test(connection) : /keep-alive/.test(connection);
    const hint = keepAliveHint ? /timeout=(\d+)/i.exec(keepAliveHint) : null;
    if (hint) {
      this.idleMs = Number(hint[1]) * 1000 - 1000;
    }
    if (statusCode === 101) {
      // Nothing was asked to switch to: node's client gives it up too.
      this.keepAlive = false;
      this.complete(false);
    } else if (statusCode === 204 || statusCode === 304) {
      this.complete(true);
    } else if (chunked) {
      this.stage = Stage.ChunkSize;
    } else if (transferEncoding) {
      this.keepAlive = false;
      this.stage = Stage.UntilClose;
    } else if (contentLength !== null) {
      this.remaining = contentLength;
      if (contentLength === 0) {
        this.complete(true);
      } else {
        this.stage = Stage.Fixed;
      }
    } else {
      this.keepAlive = false;
      this.stage = Stage.UntilClose;
    }
  }
}

/** The connections to one origin. */
class Pool {
  readonly idle: Connection[] = [];
  readonly waiting: Exchange[] = [];
  /** Every connection open, idle or not. */
  readonly connections = new Set<Connection>();

  constructor(
    private readonly client: Http1Client,
    readonly key: string,
    readonly origin: Http1Origin,
  ) {}

  release(connection: Connection): void {
    const next = this.waiting.shift();
    if (next) {
      connection.start(next);
      return;
    }
    this.idle.push(connection);
    connection.idle();
  }

  gone(connection: Connection): void {
    this.connections.delete(connection);
    const at = this.idle.indexOf(connection);
    if (at >= 0) {
      this.idle.splice(at, 1);
    }
    const next = this.waiting.shift();
    if (next) {
      this.client.run(this, next);
    } else if (this.connections.size === 0) {
      this.client.forget(this);
    }
  }
}

export class Http1Client {
  private readonly pools = new Map<string, Pool>();
  /** The last TLS session per origin, the oldest origin first, as https.Agent caches them. */
  private readonly sessions = new Map<string, Buffer>();

  constructor(private readonly options: Http1ClientOptions) {}

  /**
   * POSTs `body` (a string, sent as UTF-8) as JSON to `path` at `origin`: Content-Type,
   * User-Agent and Content-Length, then `headers` in their order, then Host and Connection, as
   * node:http writes a request given them in that order. `done` is called once (never before
   * post returns), unless the request is cancelled first.
   */
  post(
    origin: Http1Origin,
    path: string,
    headers: ReadonlyArray<readonly [string, string]>,
    body: string,
    done: Http1Callback,
  ): Http1Request {
    if (INVALID_PATH.test(path)) {
      // Never from within post(): the caller holds the request by then.
      const error = codeError(
        'Request path contains unescaped characters',
        'ERR_UNESCAPED_CHARACTERS',
      );
      queueMicrotask(() => done(error));
      return { cancel: () => undefined, statusCode: null };
    }
    const host = origin.host.includes(':') ? `[${origin.host}]` : origin.host;
    const defaultPort = origin.secure ? 443 : 80;
    let text =
      `POST ${path} HTTP/1.1\r\ncontent-type: application/json\r\n` +
      `user-agent: ${USER_AGENT}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`;
    for (const [name, value] of headers) {
      text += `${name}: ${value}\r\n`;
    }
    text +=
      `Host: ${origin.port === defaultPort ? host : `${host}:${origin.port}`}\r\n` +
      `Connection: keep-alive\r\n\r\n${body}`;
    const key = `${origin.secure ? 'https' : 'http'}:${origin.host}:${origin.port}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool(this, key, origin);
      this.pools.set(key, pool);
    }
    const exchange = new Exchange(text, done, pool);
    this.run(pool, exchange);
    return exchange;
  }

  /** Destroys every connection, as Agent.destroy(): what was on one ends with ECONNRESET. */
  close(): void {
    for (const pool of [...this.pools.values()]) {
      pool.waiting.length = 0;
      for (const connection of [...pool.connections]) {
        connection.destroy();
      }
    }
  }

  /** @internal Starts `exchange` on a free connection, a new one, or queues it. */
  run(pool: Pool, exchange: Exchange): void {
    if (exchange.cancelled) {
      return;
    }
    // The most recently freed first, as node's Agent (scheduling: 'lifo').
    const idle = pool.idle.pop();
    if (idle) {
      idle.start(exchange);
      return;
    }
    if (pool.connections.size >= this.options.maxSockets) {
      pool.waiting.push(exchange);
      return;
    }
    const connection = new Connection(this.connect(pool), pool, this.options.maxBodyBytes);
    pool.connections.add(connection);
    connection.start(exchange);
  }

  /** @internal */
  forget(pool: Pool): void {
    if (this.pools.get(pool.key) === pool) {
      this.pools.delete(pool.key);
    }
  }

  private connect(pool: Pool): net.Socket {
    const { host, port, secure } = pool.origin;
    const lookup = this.options.lookup;
    if (!secure) {
      return net.connect({ host, port, lookup });
    }
    const socket = tls.connect({
      host,
      port,
      lookup,
      // As https.Agent: SNI by name, none for an address.
      servername: net.isIP(host) === 0 ? host : undefined,
      ALPNProtocols: ['http/1.1'],
      ca: this.options.ca,
      // As https.Agent: the origin's last session is offered, for a shorter handshake.
      session: this.sessions.get(pool.key),
    });
    socket.on('session', (session: Buffer) => this.cacheSession(pool.key, session));
    // As https.Agent: a connection that ends in an error takes its origin's session along.
    socket.once('close', (hadError: boolean) => {
      if (hadError) {
        this.sessions.delete(pool.key);
      }
    });
    return socket;
  }

  /** As https.Agent's _cacheSession: a new origin past the limit drops the oldest one's. */
  private cacheSession(key: string, session: Buffer): void {
    if (!this.sessions.has(key) && this.sessions.size >= MAX_CACHED_SESSIONS) {
      this.sessions.delete(this.sessions.keys().next().value as string);
    }
    this.sessions.set(key, session);
  }
}
