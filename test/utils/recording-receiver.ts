import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** One request a receiver got. */
export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  /** Date.now() when it arrived. */
  at: number;
  headers: Record<string, string>;
}

/** How a receiver answers: a status (and headers), after `delayMs` if given. */
export type Answer = { status: number; headers?: Record<string, string>; delayMs?: number };

export interface Receiver {
  url: string;
  received: Received[];
  /** The most requests it held at once. */
  maxConcurrent: number;
  /** Changes how it answers the next requests (by default 200 at once). */
  answer(next: (request: Received, index: number) => Answer): void;
  /** The ids received, in order. */
  ids(): string[];
  close(): Promise<void>;
}

/**
 * A webhook receiver on 127.0.0.1, as an integration would run one, that records each request
 * as it arrives, before it answers (webhook-receiver.ts records answered ones): the store
 * contract counts attempts still in flight.
 */
export async function startReceiver(
  answer: (request: Received, index: number) => Answer = () => ({ status: 200 }),
): Promise<Receiver> {
  let respond = answer;
  let concurrent = 0;
  const timers = new Set<NodeJS.Timeout>();
  const receiver: Receiver = {
    url: '',
    received: [],
    maxConcurrent: 0,
    answer(next) {
      respond = next;
    },
    ids: () => receiver.received.map((r) => r.id),
    close: () =>
      new Promise<void>((resolve) => {
        timers.forEach((timer) => clearTimeout(timer));
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((request: IncomingMessage, response: ServerResponse) => {
    concurrent++;
    receiver.maxConcurrent = Math.max(receiver.maxConcurrent, concurrent);
    // Held until answered, or until the sender gives up on it.
    response.on('close', () => concurrent--);
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const headers = request.headers as Record<string, string>;
      const got: Received = {
        id: headers['webhook-id'],
        timestamp: headers['webhook-timestamp'],
        signature: headers['webhook-signature'],
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
        headers,
      };
      const index = receiver.received.length;
      receiver.received.push(got);
      const { status, headers: out, delayMs } = respond(got, index);
      const send = () => {
        if (!response.destroyed) {
          response.writeHead(status, out).end();
        }
      };
      if (delayMs) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          send();
        }, delayMs);
        timers.add(timer);
      } else {
        send();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return receiver;
}

/** Whether `secret` verifies the request, as a receiver checks it (standardwebhooks). */
export function verifies(secret: string, request: Received): boolean {
  try {
    new Webhook(secret).verify(request.body, {
      'webhook-id': request.id,
      'webhook-timestamp': request.timestamp,
      'webhook-signature': request.signature,
    });
    return true;
  } catch {
    return false;
  }
}

/** Polls `check` until it holds or `ms` pass; throws its last failure then. */
export async function eventually<T>(check: () => T | Promise<T>, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) {
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}
