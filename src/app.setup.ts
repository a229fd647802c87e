import { NestApplicationOptions } from '@nestjs/common';
import { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { RequestObserver } from './observability/request-observer';

/**
 * Options for every app instance: the JSON body parser runs as Nest middleware instead, and a
 * failure to start (Redis unreachable) is thrown to main.ts, which says why and exits 1,
 * rather than aborting the process.
 */
export const APP_OPTIONS: NestApplicationOptions = { bodyParser: false, abortOnError: false };

/** What main.ts and the e2e tests both apply to a created app, so they serve the same thing. */
export function configureApp(app: NestExpressApplication): NestExpressApplication {
  app.disable('x-powered-by');
  // Responses are never cached by clients; an ETag would cost a hash of every body.
  app.set('etag', false);
  // First, ahead of Swagger's routes and Nest's: every request gets its id, metrics and log line.
  app.use(app.get(RequestObserver).handle);

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
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
  return app;
}
