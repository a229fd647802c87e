import http from 'node:http';
import { requestJson, ServerProcess } from './spawn-server';

export interface StreamEvent {
  id?: string;
  event: string;
  data: string;
}

export interface EventStreamClient {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Events received so far (comments left out). */
  events: StreamEvent[];
  /** Comment lines received so far (heartbeats). */
  comments: string[];
  /** Resolves once `count` events have arrived. */
  waitForEvents(count: number, timeoutMs?: number): Promise<StreamEvent[]>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  /** The body, for a response that is not a stream (an error). */
  body(): string;
  close(): void;
}

/** Opens an event stream over a connection of its own and parses it as it arrives. */
export function openEventStream(
  baseUrl: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<EventStreamClient> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${baseUrl}${path}`, { agent: false, headers }, (response) => {
      const events: StreamEvent[] = [];
      const comments: string[] = [];
      const waiters = new Set<() => void>();
      let buffer = '';
      let raw = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        raw += chunk;
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event: StreamEvent = { event: 'message', data: '' };
          let isEvent = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) {
              comments.push(line.slice(1).trim());
            } else {
              const colon = line.indexOf(':');
              const field = line.slice(0, colon);
              const value = line.slice(colon + 1).replace(/^ /, '');
              isEvent = true;
              if (field === 'id') {
                event.id = value;
              } else if (field === 'event') {
                event.event = value;
              } else if (field === 'data') {
                event.data += value;
              }
            }
          }
          if (isEvent) {
            events.push(event);
          }
        }
        waiters.forEach((check) => check());
      });
      const ended = new Promise<void>((done) => response.on('close', () => done()));
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        events,
        comments,
        ended,
        body: () => raw,
        waitForEvents: (count, timeoutMs = 5_000) =>
          new Promise((done, fail) => {
            const timer = setTimeout(() => {
              waiters.delete(check);
              fail(new Error(`${events.length} of ${count} events after ${timeoutMs} ms: ${raw}`));
            }, timeoutMs);
            const check = () => {
              if (events.length >= count) {
                clearTimeout(timer);
                waiters.delete(check);
                done(events.slice(0, count));
              }
            };
            waiters.add(check);
            check();
          }),
        close: () => request.destroy(),
      });
    });
    request.on('error', reject);
  });
}

/** Opens a conversation on a built server; its id. */
export const createOn = async (server: ServerProcess): Promise<string> => {
  const res = await requestJson<{ id: string }>(server.baseUrl, 'POST', '/api/conversations');
  expect(res.status).toBe(201);
  return res.body.id;
};

/** Posts an agent message on a built server; the message. */
export const postOn = async (server: ServerProcess, id: string, content: string) => {
  const res = await requestJson<{ id: string; seq: number }>(
    server.baseUrl,
    'POST',
    `/api/conversations/${id}/messages`,
    { sender: 'agent', content },
  );
  expect(res.status).toBe(201);
  return res.body;
};

export const eventsPath = (id: string) => `/api/conversations/${id}/events`;
