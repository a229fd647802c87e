import {
  ArgumentsHost,
  BadRequestException,
  Body,
  Catch,
  Controller,
  Delete,
  ExceptionFilter,
  Get,
  Module,
  NotFoundException,
  Param,
  Post,
  Res,
} from '@nestjs/common';
import { APP_FILTER, NestFactory } from '@nestjs/core';
import { ExpressAdapter, NestExpressApplication } from '@nestjs/platform-express';
import type { Express, NextFunction, Request, Response } from 'express';
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { ChatCore, JSON_TYPES, LIMITS, PROBLEM_CONTENT_TYPE, PROBLEMS, Reply } from './chat-core';

/**
 * The leanest idiomatic NestJS 12 app doing E's work: configuration N as it is (the floor for
 * the real server, B), and NX with the production features in front (nest-prod-server.ts).
 * One module, one controller, no pipes, guards or interceptors: validation is ChatCore's, by
 * hand. Problems are thrown and written by one catch-all filter, as Nest apps do. Same replies
 * as E (status, headers, content type, body); X-Powered-By and ETag off.
 */

/** A ChatCore problem reply, thrown so that the filter writes it. */
class ProblemException extends Error {
  constructor(readonly reply: Reply) {
    super(String(reply.status));
  }
}

/** A success reply's body for Nest to send (its statuses are Nest's defaults: POST 201, else 200). */
function unwrap(reply: Reply, res?: Response): unknown {
  if (reply.problem) {
    throw new ProblemException(reply);
  }
  if (reply.headers) {
    res?.set(reply.headers);
  }
  return reply.body;
}

@Controller('api/conversations')
class ConversationsController {
  constructor(private readonly core: ChatCore) {}

  @Post()
  create(@Body() body: unknown, @Res({ passthrough: true }) res: Response): unknown {
    return unwrap(this.core.createConversation(body), res);
  }

  @Get(':conversationId')
  get(@Param('conversationId') conversationId: string): unknown {
    return unwrap(this.core.getConversation(conversationId));
  }

  @Post(':conversationId/messages')
  post(@Param('conversationId') conversationId: string, @Body() body: unknown): unknown {
    return unwrap(this.core.postMessage(conversationId, body));
  }

  @Delete(':conversationId/messages/:messageId')
  delete(
    @Param('conversationId') conversationId: string,
    @Param('messageId') messageId: string,
  ): unknown {
    return unwrap(this.core.deleteMessage(conversationId, messageId));
  }
}

/** What E's error handler and 404 answer, for what Nest throws or passes on. */
function problemFor(exception: unknown): Reply {
  if (exception instanceof ProblemException) {
    return exception.reply;
  }
  // Nest's own "Cannot GET /x" for a request no route matched.
  if (exception instanceof NotFoundException) {
    return PROBLEMS.routeNotFound();
  }
  // Nest maps body-parser's SyntaxError (invalid JSON) to a BadRequestException.
  if (exception instanceof BadRequestException) {
    return PROBLEMS.malformedJson();
  }
  const type = (exception as { type?: unknown } | null)?.type;
  if (type === 'entity.too.large') {
    return PROBLEMS.payloadTooLarge();
  }
  if (type === 'charset.unsupported' || type === 'encoding.unsupported') {
    return PROBLEMS.unsupportedMediaType();
  }
  console.error(exception);
  return { status: 500, body: { status: 500, code: 'internal_error' }, problem: true };
}

@Catch()
class ProblemFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const reply = problemFor(exception);
    res.set(reply.headers ?? {});
    res.status(reply.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(reply.body));
  }
}

/** E's check: a body that is not JSON is refused before it is read. */
function requireJsonBody(req: Request, _res: Response, next: NextFunction): void {
  const length = req.headers['content-length'];
  const hasBody =
    req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
  next(
    hasBody && !req.is(JSON_TYPES)
      ? new ProblemException(PROBLEMS.unsupportedMediaType())
      : undefined,
  );
}

/**
 * Express on a server whose requests and responses are made with Express's prototypes, as
 * the real server's are (src/http/fast-path/express-message-classes.ts; written again
 * here, since a baseline does not import the server): Express's per-request
 * Object.setPrototypeOf then changes nothing, and V8 keeps one hidden class for all requests.
 */
class PrototypedExpressAdapter extends ExpressAdapter {
  override initHttpServer(): void {
    const app = this.getInstance<Express>();
    class AppRequest extends IncomingMessage {}
    class AppResponse<R extends IncomingMessage> extends ServerResponse<R> {}
    Object.setPrototypeOf(AppRequest.prototype, app.request);
    Object.setPrototypeOf(AppResponse.prototype, app.response);
    app.request = AppRequest.prototype as Express['request'];
    app.response = AppResponse.prototype as Express['response'];
    this.httpServer = createServer(
      { IncomingMessage: AppRequest, ServerResponse: AppResponse },
      app,
    );
  }
}

/**
 * Starts the app on PORT and HOST with `core` doing the chat work; `before` adds middleware
 * ahead of the body check and the routes (NX's production features). `prototyped`: on
 * PrototypedExpressAdapter (NP), else on Nest's own.
 */
export async function startNestChat(
  core: ChatCore,
  before: (app: NestExpressApplication) => void = () => undefined,
  prototyped = false,
): Promise<void> {
  @Module({
    controllers: [ConversationsController],
    providers: [
      { provide: ChatCore, useValue: core },
      { provide: APP_FILTER, useClass: ProblemFilter },
    ],
  })
  class BenchModule {}

  // Nest's default parsers (JSON and urlencoded, 100 kB) replaced by E's one JSON parser.
  const options = { logger: false as const, bodyParser: false };
  const app = prototyped
    ? await NestFactory.create<NestExpressApplication>(
        BenchModule,
        new PrototypedExpressAdapter(),
        options,
      )
    : await NestFactory.create<NestExpressApplication>(BenchModule, options);
  app.disable('x-powered-by');
  app.set('etag', false);
  before(app);
  app.use(requireJsonBody);
  app.useBodyParser('json', { limit: LIMITS.bodyLimitBytes, strict: false, type: JSON_TYPES });
  const port = Number(process.env.PORT ?? 3000);
  const host = process.env.HOST ?? '127.0.0.1';
  await app.listen(port, host);
  console.log(`Listening on http://${host}:${port}`);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => process.exit(0));
  }
}
