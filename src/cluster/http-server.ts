import { LoggerService, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter, NestExpressApplication } from '@nestjs/platform-express';
import type { Express, Response } from 'express';
import { createServer, Server, ServerOptions } from 'node:http';
import { APP_OPTIONS, configureApp } from '../app.setup';
import { HttpSettings } from '../config/app.settings';
import { EventStreamsService } from '../conversations/event-streams.service';
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
  constructor(private readonly serverOptions: ServerOptions) {
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
  const adapter = new TimedExpressAdapter({
    requestTimeout: http.requestTimeoutMs,
    headersTimeout: http.headersTimeoutMs,
    keepAliveTimeout: http.keepAliveTimeoutMs,
    connectionsCheckingInterval: 1_000,
  });
  const app = await NestFactory.create<NestExpressApplication>(rootModule, adapter, {
    ...APP_OPTIONS,
    logger,
  });
  configureApp(app);
  await app.listen(http.port, http.host);
  return app;
}

/**
 * Stops accepting connections, lets in-flight requests finish (closing keep-alive sockets as
 * they fall idle), cuts what remains after `graceMs`, then shuts the app down. The server is
 * drained before Nest's hooks run, so handlers still have their store while they finish.
 */
export async function closeGracefully(app: NestExpressApplication, graceMs: number): Promise<void> {
  const server = app.getHttpServer() as Server;
  // Event streams never fall idle: end them, and their clients reconnect to another worker.
  app.get(EventStreamsService, { strict: false }).closeAll();
  const closeIdle = setInterval(() => server.closeIdleConnections(), 100);
  const cutOff = setTimeout(() => server.closeAllConnections(), graceMs);
  try {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
  } finally {
    clearInterval(closeIdle);
    clearTimeout(cutOff);
  }
  await app.close();
}
