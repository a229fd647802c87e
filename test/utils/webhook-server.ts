import { API_KEYS, BACKEND_KEY, bearer } from './credentials';
import { requestText, ServerProcess } from './spawn-server';
import { Received, WebhookReceiver } from './webhook-receiver';

/**
 * What the webhook suites on built servers share: the settings that make deliveries fast, and
 * the API calls they make with the backend's key (webhook routes need API_KEYS).
 */

/** Fast retries and timeouts, receivers on 127.0.0.1, and keys (webhooks need them). */
export const FAST_WEBHOOKS: Record<string, string> = {
  API_KEYS,
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
  WEBHOOK_RETRY_SCHEDULE: '0.02,0.04,0.06',
  WEBHOOK_TIMEOUT_MS: '500',
};

export interface Answered<T> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

/** One request with the backend's key, on a fresh connection (so a cluster spreads them). */
export async function call<T = Record<string, unknown>>(
  server: ServerProcess,
  method: string,
  path: string,
  body?: unknown,
): Promise<Answered<T>> {
  const res = await requestText(server.baseUrl, method, path, {
    body,
    headers: bearer(BACKEND_KEY),
  });
  return {
    status: res.status,
    headers: res.headers,
    body: (res.text ? JSON.parse(res.text) : undefined) as T,
  };
}

export interface Endpoint {
  id: string;
  secret: string;
}

export async function createEndpoint(
  server: ServerProcess,
  url: string,
  events?: string[],
): Promise<Endpoint> {
  const res = await call<Endpoint>(server, 'POST', '/api/webhooks', {
    url,
    ...(events ? { events } : {}),
  });
  expect(res.status).toBe(201);
  return res.body;
}

export async function createConversation(server: ServerProcess): Promise<string> {
  const res = await call<{ id: string }>(server, 'POST', '/api/conversations');
  expect(res.status).toBe(201);
  return res.body.id;
}

export function postMessage(server: ServerProcess, id: string, content: string) {
  return call<{ id: string; seq: number }>(server, 'POST', `/api/conversations/${id}/messages`, {
    sender: 'customer',
    content,
  });
}

/** The conversation's life, from the ETag of a GET (`"<life>.<seq>"`). */
export async function lifeOf(server: ServerProcess, id: string): Promise<string> {
  const res = await call(server, 'GET', `/api/conversations/${id}`);
  expect(res.status).toBe(200);
  const life = /^"(\d+)\.\d+"$/.exec(String(res.headers.etag))?.[1];
  if (!life) {
    throw new Error(`no life in the ETag ${String(res.headers.etag)}`);
  }
  return life;
}

/** The webhook-id of a change: `evt_<id without dashes>_<life>_<seq or created>`. */
export const changeId = (conversation: string, life: string, seq: number | 'created') =>
  `evt_${conversation.replace(/-/g, '')}_${life}_${seq}`;

/** The requests of a receiver that do not verify with any of the secrets. */
export function unverified(receiver: WebhookReceiver, ...secrets: string[]): Received[] {
  return receiver.received.filter((r) => !secrets.some((s) => receiver.verifiedWith(r, s)));
}

/** Ids received more than once whose bodies differ: none, since a body is fixed when queued. */
export function differingDuplicates(received: Received[]): string[] {
  const bodies = new Map<string, string>();
  const differing = new Set<string>();
  for (const r of received) {
    const first = bodies.get(r.id);
    if (first === undefined) {
      bodies.set(r.id, r.body);
    } else if (first !== r.body) {
      differing.add(r.id);
    }
  }
  return [...differing];
}
