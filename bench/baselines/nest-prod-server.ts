import type { Express } from 'express';
import { startNestChat } from './nest-chat';
import { PRODUCTION_MIDDLEWARE, serveMetrics, tokenIssuingCore } from './production-features';

/**
 * Configuration NX: N plus the production features the real server has, written by hand
 * (production-features.ts, the same as X's): what those features cost a NestJS app, the
 * baseline that isolates them from the rest of the server's structure.
 */
startNestChat(tokenIssuingCore(), (app) => {
  for (const middleware of PRODUCTION_MIDDLEWARE) {
    app.use(middleware);
  }
  (app.getHttpAdapter().getInstance() as Express).get('/metrics', serveMetrics);
}).catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
