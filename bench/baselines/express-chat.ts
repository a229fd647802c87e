import express, { Express, NextFunction, Request, Response } from 'express';
import { ChatCore, JSON_TYPES, LIMITS, PROBLEM_CONTENT_TYPE, PROBLEMS, Reply } from './chat-core';

/**
 * What E and X share: the Express app with ETag and X-Powered-By off (as in the real server),
 * the reply writer, and the chat API itself (the 415 check, the JSON body, the four routes,
 * the 404 and the error replies). X adds its production features in front (`before`).
 */

export function send(res: Response, reply: Reply): void {
  res.set(reply.headers ?? {});
  if (reply.problem) {
    res.status(reply.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(reply.body));
  } else {
    res.status(reply.status).json(reply.body);
  }
}

export function chatApp(core: ChatCore, before: (app: Express) => void = () => undefined): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  before(app);
  app.use((req: Request, res: Response, next: NextFunction) => {
    const length = req.headers['content-length'];
    const hasBody =
      req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
    if (hasBody && !req.is(JSON_TYPES)) {
      send(res, PROBLEMS.unsupportedMediaType());
      return;
    }
    next();
  });
  app.use(express.json({ limit: LIMITS.bodyLimitBytes, strict: false, type: JSON_TYPES }));

  app.post('/api/conversations', (req, res) => send(res, core.createConversation(req.body)));
  app.get('/api/conversations/:conversationId', (req, res) =>
    send(res, core.getConversation(req.params.conversationId)),
  );
  app.post('/api/conversations/:conversationId/messages', (req, res) =>
    send(res, core.postMessage(req.params.conversationId, req.body)),
  );
  app.delete('/api/conversations/:conversationId/messages/:messageId', (req, res) =>
    send(res, core.deleteMessage(req.params.conversationId, req.params.messageId)),
  );
  return app;
}

/** The 404 and error replies (after any route of the caller's), then listens on PORT, HOST. */
export function serve(app: Express): void {
  app.use((_req: Request, res: Response) => send(res, PROBLEMS.routeNotFound()));
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const type = (error as { type?: unknown } | null)?.type;
    if (type === 'entity.parse.failed') {
      send(res, PROBLEMS.malformedJson());
    } else if (type === 'entity.too.large') {
      send(res, PROBLEMS.payloadTooLarge());
    } else if (type === 'charset.unsupported' || type === 'encoding.unsupported') {
      send(res, PROBLEMS.unsupportedMediaType());
    } else {
      console.error(error);
      send(res, { status: 500, body: { status: 500, code: 'internal_error' }, problem: true });
    }
  });
  const port = Number(process.env.PORT ?? 3000);
  const host = process.env.HOST ?? '127.0.0.1';
  app.listen(port, host, () => console.log(`Listening on http://${host}:${port}`));
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => process.exit(0));
  }
}
