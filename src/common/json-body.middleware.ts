import { HttpStatus, Inject, Injectable, NestMiddleware } from '@nestjs/common';
import { json, NextFunction, Request, RequestHandler, Response } from 'express';
import { isUtf8 } from 'node:buffer';
import { AppConfig, appConfig } from '../config/app.config';
import { ProblemException } from './problem';

const JSON_TYPES = ['application/json', 'application/*+json'];

/** No request this API takes nests deeper; deeper bodies would only cost stack further in. */
const MAX_DEPTH = 32;

/** Whether the JSON text in `body` nests objects and arrays deeper than MAX_DEPTH. */
function tooDeep(body: Buffer): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const byte = body[i];
    if (inString) {
      if (byte === 0x5c) {
        i++; // an escaped character, quote included
      } else if (byte === 0x22) {
        inString = false;
      }
    } else if (byte === 0x22) {
      inString = true;
    } else if (byte === 0x7b || byte === 0x5b) {
      if (++depth > MAX_DEPTH) {
        return true;
      }
    } else if (byte === 0x7d || byte === 0x5d) {
      depth--;
    }
  }
  return false;
}

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
  'entity.too.deep': () =>
    new ProblemException(
      HttpStatus.BAD_REQUEST,
      'malformed_json',
      `The body nests objects or arrays more than ${MAX_DEPTH} deep.`,
    ),
  'encoding.invalid_utf8': () =>
    new ProblemException(HttpStatus.BAD_REQUEST, 'malformed_json', 'The body is not valid UTF-8.'),
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
    this.parse = json({
      limit: config.BODY_LIMIT,
      strict: false,
      type: JSON_TYPES,
      // Decoding would turn invalid bytes into U+FFFD and store them: refuse them instead.
      // And refuse deep nesting before anything walks it recursively.
      verify: (_req, _res, body) => {
        if (!isUtf8(body)) {
          throw Object.assign(new Error('invalid UTF-8'), {
            status: HttpStatus.BAD_REQUEST,
            type: 'encoding.invalid_utf8',
          });
        }
        if (tooDeep(body)) {
          throw Object.assign(new Error('nested too deeply'), {
            status: HttpStatus.BAD_REQUEST,
            type: 'entity.too.deep',
          });
        }
      },
    });
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
