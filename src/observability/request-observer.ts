import { Inject, Injectable, Logger } from '@nestjs/common';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { performance } from 'node:perf_hooks';
import { logLevels } from '../common/logger';
import { assignRequestId, REQUEST_ID_HEADER } from '../common/request-id';
import { AppConfig, appConfig } from '../config/app.config';
import { MetricsService } from './metrics.service';

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

  constructor(
    private readonly metrics: MetricsService,
    @Inject(appConfig.KEY) config: AppConfig,
  ) {
    this.accessLog = logLevels(config.LOG_LEVEL).includes('log');
  }

  readonly handle: RequestHandler = (req: Request, res: Response, next: NextFunction) => {
    const started = performance.now();
    const requestId = assignRequestId(req);
    res.setHeader(REQUEST_ID_HEADER, requestId);
    res.once('finish', () => {
      const ms = performance.now() - started;
      // The route pattern, not the path: ids in paths would make a series per conversation.
      const route = (req.route as { path?: unknown } | undefined)?.path;
      const label = typeof route === 'string' ? route : UNMATCHED_ROUTE;
      this.metrics.observeRequest(req.method, label, res.statusCode, ms / 1000);
      if (this.accessLog) {
        this.logger.log({
          message: `${req.method} ${label} ${res.statusCode} ${ms.toFixed(1)} ms`,
          requestId,
          method: req.method,
          route: label,
          status: res.statusCode,
          durationMs: Math.round(ms * 10) / 10,
        });
      }
    });
    next();
  };
}
