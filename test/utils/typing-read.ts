import http from 'node:http';
import { EventStreamClient, openEventStream } from './event-stream';
import { requestText, ServerProcess } from './spawn-server';

/*
 * Requests for the typing and read suites, against a built server (or an instance on Redis)
 * started with API_KEYS=API_KEY.
 */

export const API_KEY = 'typing-read-test-key-0123456789';
export const TYPING_TTL_MS = 3_000;

export interface Reply<T> {
  status: number;
  body: T;
}

/** A request with a credential (an API key or a customer token), on a connection of its own. */
export async function call<T = Record<string, unknown>>(
  server: ServerProcess,
  method: string,
  path: string,
  credential = API_KEY,
  body?: unknown,
  agent: http.Agent | false = false,
): Promise<Reply<T>> {
  const { status, text } = await requestText(server.baseUrl, method, path, {
    body,
    headers: { authorization: `Bearer ${credential}` },
    agent,
  });
  return { status, body: (text ? JSON.parse(text) : undefined) as T };
}

export async function create(
  server: ServerProcess,
): Promise<{ id: string; customerToken: string }> {
  const res = await call<{ id: string; customerToken: string }>(
    server,
    'POST',
    '/api/conversations',
  );
  expect(res.status).toBe(201);
  return res.body;
}

export const post = (server: ServerProcess, id: string, content: string) =>
  call<{ seq: number }>(server, 'POST', `/api/conversations/${id}/messages`, API_KEY, {
    sender: 'agent',
    content,
  });

export const typing = (
  server: ServerProcess,
  id: string,
  body: unknown,
  credential = API_KEY,
  agent: http.Agent | false = false,
) => call(server, 'POST', `/api/conversations/${id}/typing`, credential, body, agent);

export const read = (server: ServerProcess, id: string, body: unknown, credential = API_KEY) =>
  call(server, 'POST', `/api/conversations/${id}/read`, credential, body);

export const stream = (
  server: ServerProcess,
  id: string,
  credential = API_KEY,
  headers: Record<string, string> = {},
) =>
  openEventStream(
    server.baseUrl,
    `/api/conversations/${id}/events?access_token=${encodeURIComponent(credential)}`,
    headers,
  );

export const settle = (ms = 300) => new Promise((resolve) => setTimeout(resolve, ms));

export function typingEvents(client: EventStreamClient): { sender: string; typing: boolean }[] {
  return client.events
    .filter((event) => event.event === 'typing')
    .map((event) => JSON.parse(event.data) as { sender: string; typing: boolean });
}

/** The built server the typing and read suites run on: two workers, API_KEYS set. */
export const TYPING_READ_ENV = {
  WORKERS: '2',
  API_KEYS: API_KEY,
  TYPING_TTL_MS: String(TYPING_TTL_MS),
};
