import express, { NextFunction, Request, Response } from 'express';
import helmet from 'helmet';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Counter, Histogram, Registry } from 'prom-client';
import { ChatCore, JSON_TYPES, LIMITS, PROBLEM_CONTENT_TYPE, PROBLEMS, Reply } from './chat-core';

/**
 * Configuration X: E plus the production features the real server has, written by hand on
 * Express 5: what those features cost without NestJS. Each mirrors the server's own:
 * - a request id (src/common/request-id.ts): the client's X-Request-Id when sane, else a new
 *   UUID, echoed in X-Request-Id;
 * - per-request metrics (src/observability/): a prom-client Counter and Histogram labelled by
 *   method, route pattern and status, observed when the response finishes, label children
 *   cached per series; served at GET /metrics;
 * - helmet with the server's options for plain HTTP (src/app.setup.ts);
 * - Cache-Control: no-store;
 * - a customer token on create (src/access/customer-tokens.ts): `<id>.<32 random bytes,
 *   base64url>`, its SHA-256 stored with the conversation, the token in the reply.
 */

const core = new ChatCore({
  issueToken: (conversationId) => {
    const token = `${conversationId}.${randomBytes(32).toString('base64url')}`;
    return { token, hash: createHash('sha256').update(token).digest('base64url') };
  },
});

const registry = new Registry();
const labelNames = ['method', 'route', 'status'] as const;
const requests = new Counter({
  name: 'http_requests_total',
  help: 'HTTP requests answered, by method, route pattern and status.',
  labelNames,
  registers: [registry],
});
const duration = new Histogram({
  name: 'http_request_duration_seconds',
  help: 'Time from a request arriving to its response finishing, in seconds.',
  labelNames,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [registry],
});
type Label = (typeof labelNames)[number];
const series = new Map<string, { count: Counter.Internal; seconds: Histogram.Internal<Label> }>();

function observe(method: string, route: string, status: number, seconds: number): void {
  const key = `${method} ${route} ${status}`;
  let found = series.get(key);
  if (!found) {
    const labels = { method, route, status: String(status) };
    found = { count: requests.labels(labels), seconds: duration.labels(labels) };
    series.set(key, found);
  }
  found.count.inc();
  found.seconds.observe(seconds);
}

const SANE_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

const app = express();
app.disable('x-powered-by');
app.set('etag', false);

function send(res: Response, reply: Reply): void {
  res.set(reply.headers ?? {});
  if (reply.problem) {
    res.status(reply.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(reply.body));
  } else {
    res.status(reply.status).json(reply.body);
  }
}

app.use((req: Request, res: Response, next: NextFunction) => {
  const started = performance.now();
  const incoming = req.headers['x-request-id'];
  res.setHeader(
    'X-Request-Id',
    typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID(),
  );
  res.once('finish', () => {
    const route = (req.route as { path?: unknown } | undefined)?.path;
    observe(
      req.method,
      typeof route === 'string' ? route : 'unmatched',
      res.statusCode,
      (performance.now() - started) / 1000,
    );
  });
  next();
});
app.use(
  helmet({
    strictTransportSecurity: false,
    contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
  }),
);
app.use((_req: Request, res: Response, next: NextFunction) => {
  res.setHeader('Cache-Control', 'no-store');
  next();
});
app.use((req: Request, res: Response, next: NextFunction) => {
  const length = req.headers['content-length'];
  const hasBody =
    req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
  if (hasBody && !req.is(JSON_TYPES)) {
    send(res, PROBLEMS.unsupportedMediaType());
    return;
  }
  next();
});
app.use(express.json({ limit: LIMITS.bodyLimitBytes, strict: false, type: JSON_TYPES }));

app.post('/api/conversations', (req, res) => send(res, core.createConversation(req.body)));
app.get('/api/conversations/:conversationId', (req, res) =>
  send(res, core.getConversation(req.params.conversationId)),
);
app.post('/api/conversations/:conversationId/messages', (req, res) =>
  send(res, core.postMessage(req.params.conversationId, req.body)),
);
app.delete('/api/conversations/:conversationId/messages/:messageId', (req, res) =>
  send(res, core.deleteMessage(req.params.conversationId, req.params.messageId)),
);
app.get('/metrics', async (_req, res) => {
  res.type(registry.contentType).send(await registry.metrics());
});
app.use((_req: Request, res: Response) => send(res, PROBLEMS.routeNotFound()));
app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
  const type = (error as { type?: unknown } | null)?.type;
  if (type === 'entity.parse.failed') {
    send(res, PROBLEMS.malformedJson());
  } else if (type === 'entity.too.large') {
    send(res, PROBLEMS.payloadTooLarge());
  } else if (type === 'charset.unsupported' || type === 'encoding.unsupported') {
    send(res, PROBLEMS.unsupportedMediaType());
  } else {
    console.error(error);
    send(res, { status: 500, body: { status: 500, code: 'internal_error' }, problem: true });
  }
});

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';
app.listen(port, host, () => console.log(`Listening on http://${host}:${port}`));
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => process.exit(0));
}
