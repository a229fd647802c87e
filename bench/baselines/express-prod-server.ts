import { chatApp, serve } from './express-chat';
import { PRODUCTION_MIDDLEWARE, serveMetrics, tokenIssuingCore } from './production-features';

/**
 * Configuration X: E plus the production features the real server has, written by hand on
 * Express 5 (production-features.ts): what those features cost without NestJS.
 */
const app = chatApp(tokenIssuingCore(), (server) => {
  for (const middleware of PRODUCTION_MIDDLEWARE) {
    server.use(middleware);
  }
});
app.get('/metrics', serveMetrics);
serve(app);
