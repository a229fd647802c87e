import { HttpStatus, Inject, Injectable, NestMiddleware } from '@nestjs/common';
import { json, NextFunction, Request, RequestHandler, Response } from 'express';
import { AppConfig, appConfig } from '../config/app.config';
import { ProblemException } from './problem';

const JSON_TYPES = ['application/json', 'application/*+json'];

/** The body parser's errors (http-errors objects), by their `type`. */
const PARSER_PROBLEMS: Record<string, () => ProblemException> = {
  'entity.parse.failed': () =>
    new ProblemException(HttpStatus.BAD_REQUEST, 'malformed_json', 'The body is not valid JSON.'),
  'entity.too.large': () =>
    new ProblemException(
      HttpStatus.PAYLOAD_TOO_LARGE,
      'payload_too_large',
      'The body is larger than the server accepts (BODY_LIMIT).',
    ),
  'charset.unsupported': () =>
    new ProblemException(
      HttpStatus.UNSUPPORTED_MEDIA_TYPE,
      'unsupported_media_type',
      'The body must be JSON encoded as UTF-8.',
    ),
  'encoding.unsupported': () =>
    new ProblemException(
      HttpStatus.UNSUPPORTED_MEDIA_TYPE,
      'unsupported_media_type',
      'The body uses a content encoding the server does not accept.',
    ),
};

/** Translated here: past this point Nest would turn them into a bare 400 or a 500. */
function toProblem(error: unknown): unknown {
  const type = (error as { type?: unknown } | null)?.type;
  const known = typeof type === 'string' ? PARSER_PROBLEMS[type] : undefined;
  if (known) {
    return known();
  }
  const status = (error as { status?: unknown } | null)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new ProblemException(status, 'bad_request', 'The request body could not be read.');
  }
  return error;
}

/**
 * Parses JSON bodies (any JSON value: the pipes say what shape a route wants) inside Nest's middleware chain (the app is created with
 * `bodyParser: false`), so that parser errors reach the problem+json filter, and refuses
 * bodies of any other type with 415.
 */
@Injectable()
export class JsonBodyMiddleware implements NestMiddleware {
  private readonly parse: RequestHandler;

  constructor(@Inject(appConfig.KEY) config: AppConfig) {
    this.parse = json({ limit: config.BODY_LIMIT, strict: false, type: JSON_TYPES });
  }

  use(req: Request, res: Response, next: NextFunction): void {
    const hasBody =
      req.headers['transfer-encoding'] !== undefined ||
      (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
    if (hasBody && !req.is(JSON_TYPES)) {
      next(
        new ProblemException(
          HttpStatus.UNSUPPORTED_MEDIA_TYPE,
          'unsupported_media_type',
          'The body must be JSON, sent with Content-Type: application/json.',
        ),
      );
      return;
    }
    this.parse(req, res, (error?: unknown) => next(error ? toProblem(error) : undefined));
  }
}
