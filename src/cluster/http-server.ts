import { LoggerService, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter, NestExpressApplication } from '@nestjs/platform-express';
import type { Express } from 'express';
import { createServer, IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import { APP_OPTIONS, configureApp } from '../app.setup';
import { HttpSettings } from '../config/app.settings';
import { EventStreamsService } from '../conversations/event-streams.service';

/**
 * The request and response classes for `app`'s server: Node's, with Express's request and
 * response prototypes (app.request, app.response) already in place when Node creates them.
 *
 * Express gives every request and response its prototypes as it starts handling them
 * (Object.setPrototypeOf in app.handle). V8 then gives each object a hidden class of its own,
 * not shared with the objects of other requests: every property later added to it (by Express's
 * router, Nest, this server) builds a new one, and every property read on it misses the
 * engine's caches. Measured on this machine: adding one property to an Express response cost
 * about 3 to 6 µs, against 0.1 µs on a plain Node response. Made with these classes, the
 * objects have the prototypes already, Express's setPrototypeOf changes nothing, and the
 * objects of all requests share their hidden classes. Nothing else changes: the prototype
 * chain is the one Express sets (the classes' own prototypes sit in front of Express's, which
 * lead on to Node's), and app.request and app.response become those prototypes, so Express
 * finds them in place.
 */
export function expressMessageClasses(
  app: Express,
): Pick<ServerOptions, 'IncomingMessage' | 'ServerResponse'> {
  class AppRequest extends IncomingMessage {}
  class AppResponse<Request extends IncomingMessage> extends ServerResponse<Request> {}
  Object.setPrototypeOf(AppRequest.prototype, app.request);
  Object.setPrototypeOf(AppResponse.prototype, app.response);
  app.request = AppRequest.prototype as Express['request'];
  app.response = AppResponse.prototype as Express['response'];
  return { IncomingMessage: AppRequest, ServerResponse: AppResponse };
}

/**
 * Express on an http.Server with timeouts, checked every second, so that clients that send
 * their requests slowly (a header byte at a time) cannot hold connections; its requests and
 * responses are made with Express's prototypes (expressMessageClasses). The e2e suites' apps
 * use it too (test/utils/create-app.ts), with Node's default timeouts.
 */
export class TimedExpressAdapter extends ExpressAdapter {
  constructor(private readonly serverOptions: ServerOptions) {
    super();
  }

  override initHttpServer(): void {
    const app = this.getInstance<Express>();
    this.httpServer = createServer({ ...this.serverOptions, ...expressMessageClasses(app) }, app);
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
