import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import { AddressInfo, createServer, LookupFunction, Server, Socket } from 'node:net';
import { lookup as dnsLookup } from 'node:dns';
import { Http1Client, Http1Origin } from './http1-client';

/**
 * Holds http1-client.ts equal to node:http's client as the webhook sender used it (a POST
 * through a keep-alive Agent, the answer read for its status, Retry-After and at most 1 KiB of
 * body): the same request bytes, and for each answer a raw server writes, the same status,
 * Retry-After or error code. Both run against the same servers in each test.
 */

const HEADERS: [string, string][] = [
  ['webhook-id', 'evt_1'],
  ['webhook-timestamp', '1700000000'],
  ['webhook-signature', 'v1,abc='],
];
const BODY = '{"id":"evt_1","type":"message.created","data":{"content":"héllo"}}';
const MAX_BODY = 1024;

interface Result {
  statusCode: number | null;
  retryAfter?: string;
  error?: string;
}

/** node:http, as HttpWebhookSender made its attempts before the fast path. */
function viaNode(agent: http.Agent, port: number, path = '/hook'): Promise<Result> {
  return new Promise((resolve) => {
    let statusCode: number | null = null;
    let done = false;
    const finish = (result: Result) => {
      if (!done) {
        done = true;
        resolve(result);
      }
    };
    const body = Buffer.from(BODY);
    const request = http.request({
      hostname: '127.0.0.1',
      port,
      path,
      method: 'POST',
      agent,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'chat-server-webhooks/1',
        'content-length': body.length,
        ...Object.fromEntries(HEADERS),
      },
    });
    const fail = (error: NodeJS.ErrnoException) =>
      finish({ statusCode, error: error.code ?? error.message });
    request.on('error', fail);
    request.on('response', (response) => {
      statusCode = response.statusCode ?? null;
      let received = 0;
      const answered = () => {
        const header = response.headers['retry-after'];
        finish({
          statusCode,
          ...(header === undefined
            ? {}
            : { retryAfter: Array.isArray(header) ? header[0] : header }),
        });
      };
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > MAX_BODY) {
          answered();
          request.destroy();
        }
      });
      response.on('end', answered);
      response.on('error', fail);
    });
    request.end(body);
  });
}

function viaFastPath(client: Http1Client, port: number, path = '/hook'): Promise<Result> {
  const origin: Http1Origin = { secure: false, host: '127.0.0.1', port };
  return new Promise((resolve) => {
    const request = client.post(origin, path, HEADERS, BODY, (error, answer) => {
      if (error) {
        const code = (error as NodeJS.ErrnoException).code;
        resolve({ statusCode: request?.statusCode ?? null, error: code ?? error.message });
      } else {
        resolve({
          statusCode: answer!.statusCode,
          ...(answer!.retryAfter === undefined ? {} : { retryAfter: answer!.retryAfter }),
        });
      }
    });
  });
}

/**
 * A raw TCP server: each request's bytes (up to the end of its body) are recorded and
 * `answer` writes what goes back on the socket. Counts connections.
 */
class RawServer {
  readonly requests: string[] = [];
  connections = 0;
  answer: (socket: Socket, index: number) => void = (socket) =>
    socket.write('HTTP/1.1 204 No Content\r\n\r\n');
  private readonly sockets = new Set<Socket>();

  constructor(private readonly server: Server) {}

  static async start(): Promise<RawServer> {
    const server = createServer();
    const raw = new RawServer(server);
    server.on('connection', (socket) => raw.accept(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return raw;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) {
      socket.destroy();
    }
    await new Promise((resolve) => this.server.close(resolve));
  }

  private accept(socket: Socket): void {
    this.connections++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) {
          return;
        }
        const length = Number(/content-length: (\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
        if (buffered.length < end + 4 + length) {
          return;
        }
        this.requests.push(buffered.slice(0, end + 4 + length));
        buffered = buffered.slice(end + 4 + length);
        this.answer(socket, this.requests.length - 1);
      }
    });
  }
}

const lookup = dnsLookup as LookupFunction;

describe('http1-client: held equal to node:http as the webhook sender used it', () => {
  let server: RawServer;
  let agent: http.Agent;
  let client: Http1Client;

  beforeEach(async () => {
    server = await RawServer.start();
    agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
    client = new Http1Client({ lookup, maxSockets: 256, maxBodyBytes: MAX_BODY });
  });
  afterEach(async () => {
    agent.destroy();
    client.close();
    await server.stop();
  });

  /** The same answer through both clients, one after the other, on fresh connections. */
  async function both(answer: RawServer['answer']): Promise<[Result, Result]> {
    server.answer = answer;
    const fromNode = await viaNode(agent, server.port);
    agent.destroy();
    agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
    const fromFastPath = await viaFastPath(client, server.port);
    return [fromNode, fromFastPath];
  }

  it('writes the same request bytes, path and query included, UTF-8 body and all', async () => {
    await viaNode(agent, server.port, '/hooks/a?x=1&y=%20');
    await viaFastPath(client, server.port, '/hooks/a?x=1&y=%20');
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1]).toBe(server.requests[0]);
    expect(server.requests[0]).toContain(`Host: 127.0.0.1:${server.port}\r\n`);
    expect(server.requests[0].endsWith(Buffer.from(BODY).toString('latin1'))).toBe(true);
  });

  const answers: [string, RawServer['answer'], Result][] = [
    [
      '200 with a Content-Length body',
      (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'),
      { statusCode: 200 },
    ],
    ['204', (s) => s.write('HTTP/1.1 204 No Content\r\n\r\n'), { statusCode: 204 }],
    [
      '500 chunked, with a trailer',
      (s) =>
        s.write(
          'HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n',
        ),
      { statusCode: 500 },
    ],
    [
      '429 with Retry-After in seconds (the first of two)',
      (s) =>
        s.write(
          'HTTP/1.1 429 Slow\r\nRetry-After: 7\r\nretry-after: 9\r\nContent-Length: 0\r\n\r\n',
        ),
      { statusCode: 429, retryAfter: '7' },
    ],
    [
      '503 with Retry-After as a date',
      (s) =>
        s.write(
          'HTTP/1.1 503 Busy\r\nRetry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\nContent-Length: 0\r\n\r\n',
        ),
      { statusCode: 503, retryAfter: 'Wed, 21 Oct 2026 07:28:00 GMT' },
    ],
    [
      '301, not followed',
      (s) =>
        s.write('HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n'),
      { statusCode: 301 },
    ],
    [
      '100 Continue, then 200',
      (s) => s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'),
      { statusCode: 200 },
    ],
    [
      '103 Early Hints, then 202, in two writes',
      (s) => {
        s.write('HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 20');
        setTimeout(() => s.write('2 Accepted\r\nContent-Length: 1\r\n\r\nx'), 10);
      },
      { statusCode: 202 },
    ],
    [
      'HTTP/1.0 with a body until the connection closes',
      (s) => s.end('HTTP/1.0 200 OK\r\n\r\nall of it'),
      { statusCode: 200 },
    ],
    [
      'a body of 5 KiB (read up to 1 KiB)',
      (s) => s.write(`HTTP/1.1 200 OK\r\nContent-Length: 5120\r\n\r\n${'x'.repeat(5120)}`),
      { statusCode: 200 },
    ],
    [
      'an endless chunked body (read up to 1 KiB)',
      (s) => {
        s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
        const timer = setInterval(
          () => s.writable && s.write('100\r\n' + 'y'.repeat(256) + '\r\n'),
          5,
        );
        s.on('close', () => clearInterval(timer));
      },
      { statusCode: 200 },
    ],
    [
      'a connection closed before any answer',
      (s) => s.destroy(),
      { statusCode: null, error: 'ECONNRESET' },
    ],
    [
      'a connection closed in the middle of a body',
      (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'),
      { statusCode: 200, error: 'ECONNRESET' },
    ],
    [
      'Content-Length beside Transfer-Encoding',
      (s) =>
        s.write(
          'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        ),
      { statusCode: null, error: 'HPE_INVALID_TRANSFER_ENCODING' },
    ],
    [
      'two Content-Lengths that differ',
      (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'),
      { statusCode: null, error: 'HPE_UNEXPECTED_CONTENT_LENGTH' },
    ],
    [
      'a header line without a colon',
      (s) => s.write('HTTP/1.1 200 OK\r\nbroken\r\nContent-Length: 0\r\n\r\n'),
      { statusCode: null, error: 'HPE_INVALID_HEADER_TOKEN' },
    ],
    [
      'a head past 16 KiB',
      (s) => s.write(`HTTP/1.1 200 OK\r\nX-Big: ${'b'.repeat(17 * 1024)}\r\n\r\n`),
      { statusCode: null, error: 'HPE_HEADER_OVERFLOW' },
    ],
    [
      'a status line of another protocol',
      (s) => s.write('ICY 200 OK\r\n\r\n'),
      { statusCode: null, error: 'HPE_INVALID_CONSTANT' },
    ],
    [
      'a status line of another version',
      (s) => s.write('HTTP/2 200\r\n\r\n'),
      { statusCode: null, error: 'HPE_INVALID_VERSION' },
    ],
    [
      'a status of four digits',
      (s) => s.write('HTTP/1.1 2000 OK\r\n\r\n'),
      { statusCode: null, error: 'HPE_INVALID_STATUS' },
    ],
  ];

  it.each(answers)('answers alike: %s', async (_, answer, expected) => {
    const [fromNode, fromFastPath] = await both(answer);
    expect(fromNode).toEqual(expected);
    expect(fromFastPath).toEqual(fromNode);
  });

  it('keeps one connection alive for back-to-back requests, as the Agent does', async () => {
    server.answer = (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    for (let i = 0; i < 3; i++) {
      await viaNode(agent, server.port);
    }
    const byNode = server.connections;
    // Each request started from the previous one's callback, as the sender thread's pump does.
    await new Promise<void>((resolve) => {
      let left = 3;
      const next = () =>
        client.post(
          { secure: false, host: '127.0.0.1', port: server.port },
          '/hook',
          HEADERS,
          BODY,
          () => (--left === 0 ? resolve() : next()),
        );
      next();
    });
    expect(byNode).toBe(1);
    expect(server.connections - byNode).toBe(1);
  });

  it('opens a new connection after an answer that says Connection: close', async () => {
    server.answer = (s) =>
      s.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    await viaNode(agent, server.port);
    await viaNode(agent, server.port);
    const byNode = server.connections;
    await viaFastPath(client, server.port);
    await viaFastPath(client, server.port);
    expect(byNode).toBe(2);
    expect(server.connections - byNode).toBe(2);
  });

  it('reports a refused connection by the same code', async () => {
    const port = server.port;
    await server.stop();
    expect(await viaFastPath(client, port)).toEqual(await viaNode(agent, port));
    expect((await viaFastPath(client, port)).error).toBe('ECONNREFUSED');
    server = await RawServer.start();
  });

  it('cancels a request in flight without calling back, and the next one still goes', async () => {
    server.answer = (s, index) =>
      index === 0 ? undefined : s.write('HTTP/1.1 204 No Content\r\n\r\n');
    const called: unknown[] = [];
    const origin = { secure: false, host: '127.0.0.1', port: server.port };
    const request = client.post(origin, '/hook', HEADERS, BODY, (...args) => called.push(args));
    await new Promise((resolve) => setTimeout(resolve, 50));
    request.cancel();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(called).toEqual([]);
    expect(await viaFastPath(client, server.port)).toEqual({ statusCode: 204 });
  });

  it('ends what is on a connection when closed, with the code Agent.destroy() gives', async () => {
    server.answer = () => undefined; // never answers
    const fromNode = viaNode(agent, server.port);
    const fromFastPath = viaFastPath(client, server.port);
    await new Promise((resolve) => setTimeout(resolve, 50));
    agent.destroy();
    client.close();
    expect(await fromNode).toEqual({ statusCode: null, error: 'ECONNRESET' });
    expect(await fromFastPath).toEqual(await fromNode);
  });

  it('keeps at most maxSockets connections per origin; the rest wait', async () => {
    const small = new Http1Client({ lookup, maxSockets: 2, maxBodyBytes: MAX_BODY });
    server.answer = (s) =>
      setTimeout(() => s.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 20);
    try {
      const results = await Promise.all(
        Array.from({ length: 6 }, () => viaFastPath(small, server.port)),
      );
      expect(results).toEqual(Array(6).fill({ statusCode: 200 }));
      expect(server.connections).toBe(2);
    } finally {
      small.close();
    }
  });

  it('does not keep a connection whose Keep-Alive hint is a second or less', async () => {
    server.answer = (s) =>
      s.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 0\r\n\r\n');
    await viaFastPath(client, server.port);
    await viaFastPath(client, server.port);
    expect(server.connections).toBe(2);
  });
});

/** A self-signed certificate for "localhost" (made once with openssl; valid for 100 years). */
const TLS_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5pYRIDx8WFNizId7
5u/YE+SCkO5JdnBT3gcYWswrA3yhRANCAASQqObZllPk0y1xN8D+6cAic8CiI5jo
CGtvWoaS3UVg8wQgqGZ+MF4fErwGfAHMYKhKh3i7xr5MNYHzjpEtuYX/
-----END PRIVATE KEY-----`;
const TLS_CERT = `-----BEGIN CERTIFICATE-----
MIIBgDCCASWgAwIBAgIUTDWjXLieVPrDCt8mlKHgYzDTcY4wCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNzIwMjIzOFoYDzIxMjYxMTEz
MjAyMjM4WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASQqObZllPk0y1xN8D+6cAic8CiI5joCGtvWoaS3UVg8wQgqGZ+MF4f
ErwGfAHMYKhKh3i7xr5MNYHzjpEtuYX/o1MwUTAdBgNVHQ4EFgQUzru5mhV9FNDK
OLpE1DXXQPRTKfEwHwYDVR0jBBgwFoAUzru5mhV9FNDKOLpE1DXXQPRTKfEwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAzzNX7KPsweg5U4+cynhx
yt/KTyVtfbQbMmGCyuclj70CIQDVo6TjycCIIHcO9DOhpoaed+blQLMppsE59XY+
JtFeDw==
-----END CERTIFICATE-----`;

describe('http1-client over TLS: held equal to node:https', () => {
  it('sends the name as SNI and refuses an untrusted certificate with the same code', async () => {
    const names: string[] = [];
    const server = tls.createServer({
      key: TLS_KEY,
      cert: TLS_CERT,
      SNICallback: (name, callback) => {
        names.push(name);
        callback(null, tls.createSecureContext({ key: TLS_KEY, cert: TLS_CERT }));
      },
    });
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const agent = new https.Agent({ keepAlive: true });
    const client = new Http1Client({ lookup, maxSockets: 8, maxBodyBytes: MAX_BODY });
    try {
      const fromNode = await new Promise<string | undefined>((resolve) => {
        const request = https.request({ hostname: 'localhost', port, method: 'POST', agent });
        request.on('error', (error: NodeJS.ErrnoException) => resolve(error.code));
        request.on('response', () => resolve('answered'));
        request.end(BODY);
      });
      const fromFastPath = await new Promise<string | undefined>((resolve) => {
        client.post({ secure: true, host: 'localhost', port }, '/', HEADERS, BODY, (error) =>
          resolve(error ? (error as NodeJS.ErrnoException).code : 'answered'),
        );
      });
      expect(fromNode).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
      expect(fromFastPath).toBe(fromNode);
      expect(names).toEqual(['localhost', 'localhost']);
    } finally {
      agent.destroy();
      client.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('resumes the TLS session on a new connection to the same origin, as https.Agent', async () => {
    // Each answer closes its connection, so each request makes a new one.
    const reused: boolean[] = [];
    const server = tls.createServer({ key: TLS_KEY, cert: TLS_CERT }, (socket) => {
      reused.push(socket.isSessionReused());
      socket.once('data', () => socket.end('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const agent = new https.Agent({ keepAlive: true, ca: TLS_CERT });
    const client = new Http1Client({ lookup, maxSockets: 8, maxBodyBytes: MAX_BODY, ca: TLS_CERT });
    try {
      for (let i = 0; i < 3; i++) {
        const status = await new Promise<number | undefined>((resolve, reject) => {
          const request = https.request({ hostname: 'localhost', port, method: 'POST', agent });
          request.on('error', reject);
          request.on('response', (response) => {
            response.resume();
            response.on('end', () => resolve(response.statusCode));
          });
          request.end(BODY);
        });
        expect(status).toBe(204);
      }
      const fromNode = reused.splice(0);
      for (let i = 0; i < 3; i++) {
        const status = await new Promise<number | undefined>((resolve, reject) => {
          client.post({ secure: true, host: 'localhost', port }, '/', HEADERS, BODY, (e, answer) =>
            e ? reject(e) : resolve(answer?.statusCode),
          );
        });
        expect(status).toBe(204);
      }
      expect(fromNode).toEqual([false, true, true]);
      expect(reused).toEqual(fromNode);
    } finally {
      agent.destroy();
      client.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
