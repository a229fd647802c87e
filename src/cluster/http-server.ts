import { LoggerService, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter, NestExpressApplication } from '@nestjs/platform-express';
import type { Express, Response } from 'express';
import { createServer, Server, ServerOptions } from 'node:http';
import { APP_OPTIONS, configureApp } from '../app.setup';
import { HttpSettings } from '../config/app.settings';
import { expressMessageClasses } from '../http/fast-path/express-message-classes';
import { sendJson, sendJsonPieces } from '../http/fast-path/json-response';
import { JsonText } from '../http/json-text';

/**
 * Express on an http.Server with timeouts, checked every second, so that clients that send
 * their requests slowly (a header byte at a time) cannot hold connections; its requests and
 * responses are made with Express's prototypes (expressMessageClasses), and handlers' answers
 * that are already JSON text (JsonText) are written as they are. The e2e suites' apps use it
 * too (test/utils/create-app.ts), with Node's default timeouts.
 */
export class TimedExpressAdapter extends ExpressAdapter {
  /** `graceMs`: how long a stop lets requests in flight run; without it, a stop waits for them. */
  constructor(
    private readonly serverOptions: ServerOptions,
    private readonly graceMs?: number,
  ) {
    super();
  }

  override initHttpServer(): void {
    const app = this.getInstance<Express>();
    this.httpServer = createServer({ ...this.serverOptions, ...expressMessageClasses(app) }, app);
  }

  /** Nest's one way out for a handler's answer: JSON text goes out as it is, the rest as usual. */
  override reply(response: Response, body: unknown, statusCode?: number): unknown {
    if (body instanceof JsonText) {
      const status = statusCode ?? response.statusCode;
      const { json } = body;
      if (typeof json === 'string') {
        sendJson(response, status, json);
      } else {
        sendJsonPieces(response, status, json);
      }
      return response;
    }
    return super.reply(response, body, statusCode) as unknown;
  }

  /**
   * Drains the server when the app closes: stops accepting connections, lets in-flight
   * requests finish (closing keep-alive sockets as they fall idle) and cuts what remains after
   * `graceMs`. Nest closes the adapter after every beforeApplicationShutdown hook (event
   * streams end there, as they never fall idle) and before any onApplicationShutdown hook (the
   * stores close there), so requests finish with their store.
   */
  override async close(): Promise<void> {
    const server = this.getHttpServer() as Server | undefined;
    if (!server) {
      return;
    }
    const closeIdle = setInterval(() => server.closeIdleConnections(), 100);
    const cutOff =
      this.graceMs === undefined
        ? undefined
        : setTimeout(() => server.closeAllConnections(), this.graceMs);
    try {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    } finally {
      clearInterval(closeIdle);
      clearTimeout(cutOff);
    }
  }
}

/**
 * Creates the HTTP app from its root module (AppModule for a single process, WorkerModule for
 * a cluster worker) and starts listening.
 */
export async function startHttpServer(
  rootModule: Type,
  http: HttpSettings,
  logger: LoggerService,
): Promise<NestExpressApplication> {
  const adapter = new TimedExpressAdapter(
    {
      requestTimeout: http.requestTimeoutMs,
      headersTimeout: http.headersTimeoutMs,
      keepAliveTimeout: http.keepAliveTimeoutMs,
      connectionsCheckingInterval: 1_000,
    },
    http.shutdownGraceMs,
  );
  const app = await NestFactory.create<NestExpressApplication>(rootModule, adapter, {
    ...APP_OPTIONS,
    logger,
  });
  configureApp(app);
  await app.listen(http.port, http.host);
  return app;
}
