import { Injectable, Logger } from '@nestjs/common';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { performance } from 'node:perf_hooks';
import { logLevels } from '../common/logging/logger';
import { assignRequestId, REQUEST_ID_HEADER, requestIdOf } from '../common/logging/request-id';
import { HttpSettings, ObservabilitySettings } from '../config/app.settings';
import { MetricsService } from './metrics.service';

const STARTED = Symbol('started');
type Observed = Response & { [STARTED]: number };

/** The route label of a request that matched no route. */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * The first handler of every request (see configureApp): gives it a request id, returned in
 * X-Request-Id, and when the response has finished, counts it in the HTTP metrics and writes
 * its access log line (method, route pattern, status, duration, request id).
 */
@Injectable()
export class RequestObserver {
  private readonly logger = new Logger('Http');
  private readonly accessLog: boolean;
  /** Whether to look out for a proxy nobody told us about (TRUST_PROXY unset): once. */
  private watchForProxy: boolean;
  /** The one `finish` listener of every response: no closure per request. */
  private readonly finished: (this: Response) => void;

  constructor(
    private readonly metrics: MetricsService,
    observability: ObservabilitySettings,
    http: HttpSettings,
  ) {
    this.accessLog = logLevels(observability.logLevel).includes('log');
    this.watchForProxy = http.trustProxy === false;
    const observe = (req: Request, res: Response) => this.observe(req, res);
    // `this` is the response that finished.
    this.finished = function (this: Response) {
      observe(this.req, this);
    };
  }

  /**
   * Once per process, as express-rate-limit's validation checks do: behind a proxy that is
   * not trusted, every client has the proxy's one address, for rate limits and stream places.
   */
  private warnUntrustedProxy(): void {
    this.watchForProxy = false;
    this.logger.warn(
      'A request came with X-Forwarded-For but TRUST_PROXY is not set: the forwarded address is ' +
        "ignored, so every client behind this proxy is counted as the proxy's one address and " +
        'shares one rate limit and one share of event streams. Set TRUST_PROXY (a hop count, or ' +
        'the proxy addresses) to count each client on its own.',
    );
  }

  readonly handle: RequestHandler = (req: Request, res: Response, next: NextFunction) => {
    (res as Observed)[STARTED] = performance.now();
    if (this.watchForProxy && req.headers['x-forwarded-for'] !== undefined) {
      this.warnUntrustedProxy();
    }
    res.setHeader(REQUEST_ID_HEADER, assignRequestId(req));
    // One listener for every response, no closure per request: `finish` is emitted once.
    res.on('finish', this.finished);
    next();
  };

  private observe(req: Request, res: Response): void {
    const ms = performance.now() - (res as Observed)[STARTED];
    // The route pattern, not the path: ids in paths would make a series per conversation.
    const route = (req.route as { path?: unknown } | undefined)?.path;
    const label = typeof route === 'string' ? route : UNMATCHED_ROUTE;
    this.metrics.observeRequest(req.method, label, res.statusCode, ms / 1000);
    if (this.accessLog) {
      this.logger.log({
        message: `${req.method} ${label} ${res.statusCode} ${ms.toFixed(1)} ms`,
        requestId: requestIdOf(req),
        method: req.method,
        route: label,
        status: res.statusCode,
        durationMs: Math.round(ms * 10) / 10,
      });
    }
  }
}
