import { NestApplicationOptions } from '@nestjs/common';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { HelmetOptions } from 'helmet';
import { serveConsole } from './console/console.setup';
import { HttpSettings } from './config/app.settings';
import { helmetHeaders } from './http/fast-path/helmet-headers';
import { RequestObserver } from './observability/request-observer';

/**
 * Options for every app instance: the JSON body is read by a guard instead (JsonBodyGuard,
 * after the rate limit and access guards), and a failure to start (Redis unreachable) is
 * thrown to main.ts, which says why and exits 1, rather than aborting the process.
 */
export const APP_OPTIONS: NestApplicationOptions = { bodyParser: false, abortOnError: false };

/** helmet's options for an answer over plain HTTP: no HSTS, no `upgrade-insecure-requests`. */
export const PLAIN_HTTP_HELMET: Readonly<HelmetOptions> = {
  strictTransportSecurity: false,
  contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
};

/** Whether Express's `app.use('/api', ...)` would match: `/api` or below it, in any case. */
function isApiPath(path: string): boolean {
  return (
    path.length >= 4 &&
    path.slice(0, 4).toLowerCase() === '/api' &&
    (path.length === 4 || path[4] === '/')
  );
}

/**
 * The headers every response gets, set by one middleware from lists built once:
 * - helmet's: a strict Content-Security-Policy (Swagger UI loads only its own files), nosniff,
 *   frame and referrer policies. HSTS and CSP `upgrade-insecure-requests` only on answers to
 *   HTTPS requests (TLS, or X-Forwarded-Proto: https from a trusted proxy): over plain HTTP
 *   under any name but localhost, a browser would upgrade every file a page loads to https and
 *   fail to load it.
 * - `Cache-Control: no-store` on the API's answers, which are per-user and change at any moment.
 */
function responseHeaders(trustProxy: HttpSettings['trustProxy']): RequestHandler {
  const plain = helmetHeaders(PLAIN_HTTP_HELMET);
  const secure = helmetHeaders();
  // This server speaks plain HTTP: without a trusted proxy no request is HTTPS.
  const mayBeSecure = trustProxy !== false;
  return (req: Request, res: Response, next: NextFunction) => {
    const headers = mayBeSecure && req.secure ? secure : plain;
    for (let i = 0; i < headers.length; i++) {
      res.setHeader(headers[i][0], headers[i][1]);
    }
    if (isApiPath(req.path)) {
      res.setHeader('Cache-Control', 'no-store');
    }
    next();
  };
}

/** What main.ts and the e2e tests both apply to a created app, so they serve the same thing. */
export function configureApp(app: NestExpressApplication): NestExpressApplication {
  app.disable('x-powered-by');
  // Responses are never cached by clients; an ETag would cost a hash of every body.
  app.set('etag', false);
  const http = app.get(HttpSettings);
  // Which X-Forwarded-For to believe: rate limits count per client address.
  app.set('trust proxy', http.trustProxy);
  // First, ahead of Swagger's routes and Nest's: every request gets its id, metrics and log line.
  app.use(app.get(RequestObserver).handle);
  app.use(responseHeaders(http.trustProxy));
  if (http.corsOrigins.length > 0) {
    app.enableCors({
      origin: [...http.corsOrigins],
      allowedHeaders: [
        'Content-Type',
        'Authorization',
        'Idempotency-Key',
        'Last-Event-ID',
        'X-Request-Id',
      ],
      exposedHeaders: [
        'Location',
        'X-Request-Id',
        'Idempotent-Replayed',
        'Retry-After',
        'RateLimit-Limit',
        'RateLimit-Remaining',
        'RateLimit-Reset',
      ],
      maxAge: 600,
    });
  }

  if (http.consoleEnabled) {
    serveConsole(app);
  }

  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Customer–agent chat server')
      .setDescription(
        'Open conversations, post messages as `customer` or `agent`, read the history and delete messages. ' +
          'Every error is an RFC 9457 `application/problem+json` body with a stable `code` and the `requestId` ' +
          'also returned in the `X-Request-Id` header.',
      )
      .setVersion('1.0')
      // The paths begin with /api, /health, /metrics: relative to where this document is served.
      .addServer('/', 'This server')
      // In this order in Swagger UI and the document: the API first.
      .addTag('conversations', 'Conversations, their messages, typing, read receipts and events')
      .addTag('operations', 'Health probes and metrics')
      // Not addBearerAuth, which says bearerFormat JWT: both credentials are opaque strings.
      .addSecurity('bearer', {
        type: 'http',
        scheme: 'bearer',
        description:
          "An opaque API key from API_KEYS (full access), or a conversation's opaque customerToken (read it, follow it, post as customer). Not needed when API_KEYS is unset.",
      })
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
  return app;
}
