import { Injectable } from '@nestjs/common';
import { parse as parseContentType } from 'content-type';
import { raw, Request, RequestHandler, Response } from 'express';
import { HttpSettings } from '../config/app.settings';
import { isPlainBody, readPlainBody } from './fast-path/plain-body';
import { ProblemException } from '../common/errors/problem';
import { problem } from '../common/errors/problem.catalogue';

const JSON_TYPES = ['application/json', 'application/*+json'];

/** JSON is UTF-8 (RFC 8259): a body labelled with any other charset is refused. */
const UTF8_LABELS = new Set(['utf-8', 'utf8']);

/** The reading of a request's body, once begun (see JsonBodyParser.parse). */
const PARSED = Symbol('jsonBody');
type Parsed = Request & { [PARSED]?: Promise<true> };
/** The answer for a request with no body to read. */
const READ: Promise<true> = Promise.resolve(true);

/** JSON in UTF-8; JSON in another charset (415); not JSON (415 unless there is no body). */
type BodyType = 'json' | 'other-charset' | 'other';
/** Distinct Content-Type headers remembered (see JsonBodyParser.typeOf). */
const KNOWN_TYPES_MAX = 64;

/** No request this API takes nests deeper; deeper bodies would only cost stack further in. */
const MAX_DEPTH = 32;

/**
 * Whether the JSON text in `body` nests objects and arrays deeper than MAX_DEPTH. Exact for
 * UTF-8, the only encoding parsed: every byte of a multi-byte character is 0x80 or above, so
 * a quote, a backslash or a bracket byte is always that character.
 */
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

const notJson = () => problem('unsupported_media_type');
const notUtf8Charset = () =>
  problem('unsupported_media_type', { detail: 'The body must be JSON encoded as UTF-8.' });
const malformed = (detail: string) => problem('malformed_json', { detail });

/** The reader's errors (http-errors objects from raw-body and body-parser), by their `type`. */
const READER_PROBLEMS: Record<string, () => ProblemException> = {
  'entity.too.large': () => problem('payload_too_large'),
  'encoding.unsupported': () =>
    problem('unsupported_media_type', {
      detail: 'The body uses a content encoding the server does not accept.',
    }),
};

/**
 * The problem for an error of the body reader, translated here: past this point Nest would
 * turn it into a bare 400 or a 500. Anything else unchanged.
 */
function readerProblem(error: unknown): unknown {
  const type = (error as { type?: unknown } | null)?.type;
  const known = typeof type === 'string' ? READER_PROBLEMS[type] : undefined;
  if (known) {
    return known();
  }
  const status = (error as { status?: unknown } | null)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return problem('bad_request', { status });
  }
  return error;
}

/**
 * Whether a request says it has a body: a Transfer-Encoding, or a Content-Length (0 included,
 * as body-parser counts it: an empty JSON body reads as `{}`). Without one, `req.body` stays
 * undefined and nothing is read.
 */
export function carriesBody(req: Request): boolean {
  return (
    req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined
  );
}

/**
 * Reads a request's JSON body into `req.body` (any JSON value: the pipes say what shape a
 * route wants), at most once per request, and refuses what it cannot read as problem+json:
 * a body of another type or a charset other than UTF-8 (415), one over BODY_LIMIT (413), one
 * that is not UTF-8, not JSON, or nests deeper than MAX_DEPTH (400).
 *
 * Called by JsonBodyGuard after the rate limit and access guards, so that a caller who is
 * refused there costs no body parsing (and AccessGuard calls it itself where a rule needs
 * the body). The bytes are read by express.raw (BODY_LIMIT, Content-Encoding), or, for a
 * plain body, by its fast path (http/fast-path/plain-body.ts); decoding is done here, as UTF-8
 * only, so that the depth scan sees exactly the text JSON.parse parses.
 */
@Injectable()
export class JsonBodyParser {
  private readonly readBytes: RequestHandler;
  /** Fatal: invalid bytes are refused, not stored as U+FFFD. Skips a leading BOM. */
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private readonly types = new Map<string, BodyType>();
  private readonly decodeBody = (bytes: Buffer) => this.decode(bytes);

  private readonly limit: number;

  constructor(http: HttpSettings) {
    this.limit = http.bodyLimitBytes;
    this.readBytes = raw({ limit: this.limit, type: () => true });
  }

  /**
   * Resolves to `true` once the body is in `req.body` (as a guard answers). The reading is
   * kept on the request, for the last reader (see `parseLast`).
   */
  parse(req: Request, res: Response): Promise<true> {
    // On the request itself: a WeakMap entry per request costs more, in time and in GC.
    return ((req as Parsed)[PARSED] ??= this.read(req, res));
  }

  /**
   * As `parse`, for the last reader of a request (JsonBodyGuard): the reading another began
   * is joined; one begun here is not kept, since nobody asks again.
   */
  parseLast(req: Request, res: Response): Promise<true> {
    return (req as Parsed)[PARSED] ?? this.read(req, res);
  }

  /** One promise per body read, settled from body-parser's callback: no async chain. */
  private read(req: Request, res: Response): Promise<true> {
    if (!carriesBody(req)) {
      return READ;
    }
    let type: BodyType;
    try {
      type = this.typeOf(req);
    } catch (problem) {
      return Promise.reject(problem as Error); // parameters that do not parse
    }
    if (type === 'other') {
      // An empty body of any type (Content-Length: 0) is no body.
      if (req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== '0') {
        return Promise.reject(notJson());
      }
      return READ;
    }
    if (type === 'other-charset') {
      return Promise.reject(notUtf8Charset());
    }
    if (isPlainBody(req, this.limit)) {
      return readPlainBody(req, this.decodeBody);
    }
    return new Promise<true>((resolve, reject) =>
      this.readBytes(req, res, (error?: unknown) => {
        if (error) {
          reject(readerProblem(error));
          return;
        }
        try {
          // Not a Buffer only when the request had already ended: nothing to read.
          const bytes: unknown = req.body;
          req.body = Buffer.isBuffer(bytes) ? this.decode(bytes) : undefined;
          resolve(true);
        } catch (problem) {
          reject(problem);
        }
      }),
    );
  }

  /**
   * What a request's Content-Type says, decided once per distinct header: clients send the
   * same few, and parsing one costs more than the rest of a small body's reading. A request
   * with a body but no Content-Type is "other" (as `req.is` answers).
   */
  private typeOf(req: Request): BodyType {
    const header = req.headers['content-type'];
    let type = header === undefined ? undefined : this.types.get(header);
    if (type === undefined) {
      type = !req.is(JSON_TYPES)
        ? 'other'
        : UTF8_LABELS.has(charsetOf(req))
          ? 'json'
          : 'other-charset';
      if (header !== undefined) {
        if (this.types.size >= KNOWN_TYPES_MAX) {
          this.types.clear(); // a client that varies its header every time gains nothing
        }
        this.types.set(header, type);
      }
    }
    return type;
  }

  private decode(bytes: Buffer): unknown {
    let text: string;
    try {
      text = this.decoder.decode(bytes);
    } catch {
      throw malformed('The body is not valid UTF-8.');
    }
    // Before anything walks it recursively.
    if (tooDeep(bytes)) {
      throw malformed(`The body nests objects or arrays more than ${MAX_DEPTH} deep.`);
    }
    if (text.length === 0) {
      return {}; // as body-parser reads it: an empty JSON body is a common client mistake
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw malformed('The body is not valid JSON.');
    }
  }
}

/** The charset a JSON content type names, lower case; UTF-8 when it names none. */
function charsetOf(req: Request): string {
  // RFC 9110 allows empty parameters ("application/json;"), which content-type 1.x refuses.
  const header = (req.headers['content-type'] ?? '').replace(/;[ \t]*(?=;|$)/g, '');
  let parameters: Record<string, string>;
  try {
    parameters = parseContentType(header).parameters;
  } catch {
    throw notJson(); // parameters that do not parse: which charset is meant is anyone's guess
  }
  return parameters.charset?.toLowerCase() ?? 'utf-8';
}
