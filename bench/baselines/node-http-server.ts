import http, { IncomingMessage, ServerResponse } from 'node:http';
import { ChatCore, LIMITS, PROBLEM_CONTENT_TYPE, PROBLEMS, Reply } from './chat-core';
import { WebhookCore } from './webhook-core';

/**
 * Configuration A: the API on bare node:http, the runtime's ceiling; with the least webhook
 * delivery (webhook-core.ts) for the webhooks benchmark.
 */

const core = new ChatCore();
const webhooks = new WebhookCore();
const BASE = '/api/conversations';

function send(res: ServerResponse, reply: Reply): void {
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    ...reply.headers,
    'Content-Type': `${reply.problem ? PROBLEM_CONTENT_TYPE : 'application/json'}; charset=utf-8`,
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function isJsonType(contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  return type === 'application/json' || /^application\/[^/]+\+json$/.test(type);
}

function isUtf8(contentType: string | undefined): boolean {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType ?? '')?.[1];
  return charset === undefined || /^utf-?8$/i.test(charset);
}

/** Reads and parses a JSON body (any JSON value), then answers with `handle(body)`. */
function withBody(req: IncomingMessage, res: ServerResponse, handle: (body: unknown) => Reply) {
  const length = req.headers['content-length'];
  const hasBody =
    req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
  if (!hasBody) {
    req.resume();
    send(res, handle(undefined));
    return;
  }
  const type = req.headers['content-type'];
  if (!isJsonType(type) || !isUtf8(type)) {
    req.resume();
    send(res, PROBLEMS.unsupportedMediaType());
    return;
  }
  if (Number(length) > LIMITS.bodyLimitBytes) {
    req.resume();
    send(res, PROBLEMS.payloadTooLarge());
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > LIMITS.bodyLimitBytes) {
      tooLarge = true;
    } else {
      chunks.push(chunk);
    }
  });
  req.on('end', () => {
    if (tooLarge) {
      send(res, PROBLEMS.payloadTooLarge());
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
    } catch {
      send(res, PROBLEMS.malformedJson());
      return;
    }
    send(res, handle(body));
  });
}

function route(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  const query = url.indexOf('?');
  const path = query < 0 ? url : url.slice(0, query);
  if (path === BASE && req.method === 'POST') {
    withBody(req, res, (body) => core.createConversation(body));
    return;
  }
  if (path === '/api/webhooks' && req.method === 'POST') {
    withBody(req, res, (body) => webhooks.create(body));
    return;
  }
  if (path === '/api/webhooks' && req.method === 'GET') {
    req.resume();
    send(res, webhooks.list());
    return;
  }
  if (path.startsWith(`${BASE}/`)) {
    // ['', 'api', 'conversations', id, 'messages', messageId]
    const parts = path.split('/');
    const id = decodeURIComponent(parts[3]);
    if (parts.length === 4 && req.method === 'GET') {
      req.resume();
      send(res, core.getConversation(id));
      return;
    }
    if (parts.length === 5 && parts[4] === 'messages' && req.method === 'POST') {
      withBody(req, res, (body) => {
        const reply = core.postMessage(id, body);
        if (reply.status === 201) {
          webhooks.messageCreated(id, reply.body as { seq: number; createdAt: number });
        }
        return reply;
      });
      return;
    }
    if (parts.length === 6 && parts[4] === 'messages' && req.method === 'DELETE') {
      req.resume();
      send(res, core.deleteMessage(id, decodeURIComponent(parts[5])));
      return;
    }
  }
  req.resume();
  send(res, PROBLEMS.routeNotFound());
}

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';
const server = http.createServer(route);
server.listen(port, host, () => console.log(`Listening on http://${host}:${port}`));
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => process.exit(0));
}
