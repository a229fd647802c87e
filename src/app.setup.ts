import { NestApplicationOptions } from '@nestjs/common';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import helmet from 'helmet';
import { serveConsole } from './console/console.setup';
import { HttpSettings } from './config/app.settings';
import { RequestObserver } from './observability/request-observer';

/**
 * Options for every app instance: the JSON body is read by a guard instead (JsonBodyGuard,
 * after the rate limit and access guards), and a failure to start (Redis unreachable) is
 * thrown to main.ts, which says why and exits 1, rather than aborting the process.
 */
export const APP_OPTIONS: NestApplicationOptions = { bodyParser: false, abortOnError: false };

/**
 * helmet's headers: a strict Content-Security-Policy (Swagger UI loads only its own files),
 * nosniff, frame and referrer policies. HSTS and CSP `upgrade-insecure-requests` only on
 * answers to HTTPS requests (TLS, or X-Forwarded-Proto: https from a trusted proxy): over plain
 * HTTP under any name but localhost, a browser would upgrade every file a page loads to https
 * and fail to load it. Both sets are built once; a request only picks one.
 */
function securityHeaders(trustProxy: HttpSettings['trustProxy']): RequestHandler {
  const plain = helmet({
    strictTransportSecurity: false,
    contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
  });
  const secure = helmet();
  // This server speaks plain HTTP: without a trusted proxy no request is HTTPS.
  if (trustProxy === false) {
    return plain;
  }
  return (req: Request, res: Response, next: NextFunction) =>
    (req.secure ? secure : plain)(req, res, next);
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
  app.use(securityHeaders(http.trustProxy));
  // API answers are per-user and change at any moment: never cached.
  app.use('/api', (_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
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
      .addBearerAuth({
        type: 'http',
        scheme: 'bearer',
        description:
          "An API key from API_KEYS (full access), or a conversation's customerToken (read it, follow it, post as customer). Not needed when API_KEYS is unset.",
      })
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
  return app;
}
