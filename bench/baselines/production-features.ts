import type { NextFunction, Request, RequestHandler, Response } from 'express';
import helmet from 'helmet';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Counter, Histogram, Registry } from 'prom-client';
import { ChatCore } from './chat-core';

/**
 * The production features the real server has, written by hand, for the baselines that carry
 * them on top of the same chat work: X (Express 5) and NX (NestJS 12). Each mirrors the
 * server's own:
 * - a request id (src/common/logging/request-id.ts): the client's X-Request-Id when sane, else a new
 *   UUID, echoed in X-Request-Id;
 * - per-request metrics (src/observability/): a prom-client Counter and Histogram labelled by
 *   method, route pattern and status, observed when the response finishes, label children
 *   cached per series; served at GET /metrics;
 * - helmet with the server's options for plain HTTP (src/app.setup.ts);
 * - Cache-Control: no-store;
 * - a customer token on create (src/access/customer-tokens.ts): `<id>.<32 random bytes,
 *   base64url>`, its SHA-256 stored with the conversation, the token in the reply.
 */

/** A ChatCore that issues customer tokens. */
export function tokenIssuingCore(): ChatCore {
  return new ChatCore({
    issueToken: (conversationId) => {
      const token = `${conversationId}.${randomBytes(32).toString('base64url')}`;
      return { token, hash: createHash('sha256').update(token).digest('base64url') };
    },
  });
}

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

/** The features' middleware, in the server's order, to run ahead of the chat API. */
export const PRODUCTION_MIDDLEWARE: RequestHandler[] = [
  (req: Request, res: Response, next: NextFunction) => {
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
  },
  helmet({
    strictTransportSecurity: false,
    contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
  }),
  (_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  },
];

/** GET /metrics: the Prometheus text of the metrics above. */
export async function serveMetrics(_req: Request, res: Response): Promise<void> {
  res.type(registry.contentType).send(await registry.metrics());
}
