import { HttpException } from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import { StoreError } from './store-error';
import { FieldError, ProblemException } from './problem';

/**
 * One code the API answers with: its status and title (the status's reason phrase), the
 * default `detail` (text, or made from what the raising site knows), and headers.
 */
interface ProblemEntry {
  status: number;
  title: string;
  detail: string | ((params: never) => string);
  headers?: Record<string, string> | ((params: never) => Record<string, string>);
  /** What the OpenAPI document says after the code, on routes that say nothing more. */
  apiNote?: string;
}

interface RateLimitParams {
  limit: number;
  windowMs: number;
  /** Seconds, as sent in Retry-After. */
  retryAfter: string;
}

/** A store that did not answer, or a write not confirmed in time: worth a retry at once. */
const RETRY_SOON = { 'Retry-After': '1' };
/** A place for an event stream may free up any moment. */
const RETRY_STREAM = { 'Retry-After': '5' };
/** The store is full: about one eviction tick. */
const RETRY_CAPACITY = { 'Retry-After': '60' };

/**
 * Every problem code the server answers with, by status. The exception filter renders these
 * (problem.filter.ts); store failures (store-error.ts) map to them by code (storeProblem);
 * the OpenAPI document lists them (problem.dto.ts). Raise one with `problem(code)`.
 */
export const PROBLEMS = {
  validation_failed: {
    status: 400,
    title: 'Bad Request',
    detail: 'The request is not valid: see errors for each field.',
  },
  malformed_json: {
    status: 400,
    title: 'Bad Request',
    detail: 'The body is not valid JSON.',
  },
  /** A body the reader could not read otherwise (aborted, shorter than its length), or a framework 400. */
  bad_request: {
    status: 400,
    title: 'Bad Request',
    detail: 'The request body could not be read.',
  },
  unauthorized: {
    status: 401,
    title: 'Unauthorized',
    detail: 'This route needs Authorization: Bearer <API key or customer token>.',
    headers: { 'WWW-Authenticate': 'Bearer' },
    apiNote: 'with API_KEYS set, no credential or a wrong one (WWW-Authenticate: Bearer)',
  },
  forbidden: {
    status: 403,
    title: 'Forbidden',
    detail: 'A customer token cannot do this; it takes an API key.',
  },
  api_keys_required: {
    status: 403,
    title: 'Forbidden',
    detail:
      'Webhooks need API_KEYS: a server open to anyone must not send requests to addresses anyone gives it.',
    apiNote: 'the server runs without API_KEYS (open mode)',
  },
  sender_not_allowed: {
    status: 403,
    title: 'Forbidden',
    detail: 'A customer token may act as "customer" only.',
  },
  conversation_not_found: {
    status: 404,
    title: 'Not Found',
    detail: 'No such conversation.',
  },
  message_not_found: {
    status: 404,
    title: 'Not Found',
    detail: 'No such message in this conversation.',
  },
  webhook_not_found: {
    status: 404,
    title: 'Not Found',
    detail: 'No such webhook endpoint.',
  },
  webhook_delivery_not_found: {
    status: 404,
    title: 'Not Found',
    detail: "No such delivery in this endpoint's log (it may have passed WEBHOOK_RETENTION_MS).",
  },
  not_found: {
    status: 404,
    title: 'Not Found',
    detail: 'No such route.',
  },
  /** Raised by the framework only. */
  method_not_allowed: {
    status: 405,
    title: 'Method Not Allowed',
    detail: 'Method Not Allowed',
  },
  conversation_full: {
    status: 409,
    title: 'Conflict',
    detail: 'The conversation holds the maximum number of messages.',
    apiNote: 'MAX_MESSAGES_PER_CONVERSATION reached',
  },
  already_assigned: {
    status: 409,
    title: 'Conflict',
    detail: 'The conversation is assigned to someone else: `assignee` names them.',
    apiNote: 'a claim of a conversation someone else holds; `assignee` names them',
  },
  webhook_limit_reached: {
    status: 409,
    title: 'Conflict',
    detail: 'There are as many webhook endpoints as the server allows (WEBHOOK_MAX_ENDPOINTS).',
    apiNote: 'WEBHOOK_MAX_ENDPOINTS reached',
  },
  rotation_limit_reached: {
    status: 409,
    title: 'Conflict',
    detail:
      'The endpoint has 5 previous secrets still signing: wait until the oldest expires before rotating again.',
    apiNote: '5 previous secrets still in use',
  },
  precondition_failed: {
    status: 412,
    title: 'Precondition Failed',
    detail:
      "The conversation's state changed since the ETag given in If-Match (or it is another conversation with the same id): read it again.",
    apiNote: 'If-Match names an older state (or another life of the id)',
  },
  payload_too_large: {
    status: 413,
    title: 'Payload Too Large',
    detail: 'The body is larger than the server accepts (BODY_LIMIT).',
    apiNote: 'body over BODY_LIMIT',
  },
  unsupported_media_type: {
    status: 415,
    title: 'Unsupported Media Type',
    detail: 'The body must be JSON, sent with Content-Type: application/json.',
    apiNote: 'the body is not JSON, or not in UTF-8 (charset=utf-8 or utf8)',
  },
  idempotency_key_reused: {
    status: 422,
    title: 'Unprocessable Entity',
    detail: 'This Idempotency-Key was used with a different request (method, path or body).',
  },
  rate_limited: {
    status: 429,
    title: 'Too Many Requests',
    detail: ({ limit, windowMs, retryAfter }: RateLimitParams) =>
      `Too many requests: at most ${limit} in ${windowMs / 1000} s. Retry after ${retryAfter} s.`,
    headers: ({ retryAfter }: RateLimitParams) => ({ 'Retry-After': retryAfter }),
    apiNote: 'over RATE_LIMIT_MAX (or RATE_LIMIT_API_KEY_MAX) in the window; see Retry-After',
  },
  too_many_streams: {
    status: 429,
    title: 'Too Many Requests',
    detail: ({ held, limit }: { held: number; limit: string }) =>
      `This client holds ${held} event streams here, the most it may (${limit}): close one first.`,
    headers: RETRY_STREAM,
  },
  /** Raised by the framework only (the rate limit answers rate_limited). */
  too_many_requests: {
    status: 429,
    title: 'Too Many Requests',
    detail: 'Too Many Requests',
  },
  /** A bug: logged with its cause, answered without details. */
  internal_error: {
    status: 500,
    title: 'Internal Server Error',
    detail: 'Internal Server Error',
  },
  capacity_exceeded: {
    status: 503,
    title: 'Service Unavailable',
    detail: 'The server holds the maximum number of conversations. Retry later.',
    headers: RETRY_CAPACITY,
  },
  store_unavailable: {
    status: 503,
    title: 'Service Unavailable',
    detail: 'The store did not answer in time. Retry later.',
    headers: RETRY_SOON,
  },
  replication_timeout: {
    status: 503,
    title: 'Service Unavailable',
    detail:
      'The write was not confirmed by enough Redis replicas in time: it may or may not have been applied. Retrying with the same Idempotency-Key is safe.',
    headers: RETRY_SOON,
  },
  stream_capacity_exceeded: {
    status: 503,
    title: 'Service Unavailable',
    detail: 'This server serves as many event streams as it may (MAX_EVENT_STREAMS). Retry later.',
    headers: RETRY_STREAM,
  },
  metrics_unavailable: {
    status: 503,
    title: 'Service Unavailable',
    detail: 'The cluster primary did not answer in time; try again.',
    headers: RETRY_SOON,
  },
  store_full: {
    status: 507,
    title: 'Insufficient Storage',
    detail:
      'The store is full: nothing was written. Retry later, once inactive conversations are evicted or messages deleted.',
    headers: RETRY_CAPACITY,
    apiNote:
      'the store is full (MAX_STORE_BYTES, or Redis maxmemory); nothing was written. See Retry-After',
  },
} satisfies Record<string, ProblemEntry>;

export type ProblemCode = keyof typeof PROBLEMS;

/** What a code's detail is made from, when it is made from anything. */
type ParamsOf<C extends ProblemCode> = (typeof PROBLEMS)[C]['detail'] extends (
  params: infer P,
) => string
  ? P
  : undefined;

/** A raising site that knows more than the default text; `status` only for bad_request. */
interface Overrides {
  detail?: string;
  status?: number;
}

type ProblemArgs<C extends ProblemCode> =
  ParamsOf<C> extends undefined ? [overrides?: Overrides] : [params: ParamsOf<C> & Overrides];

function reasonPhrase(status: number): string {
  return STATUS_CODES[status] ?? 'Error';
}

/** The exception for a code, to throw: `throw problem('conversation_not_found')`. */
export function problem<C extends ProblemCode>(
  code: C,
  ...[options]: ProblemArgs<C>
): ProblemException {
  const entry: ProblemEntry = PROBLEMS[code];
  const given = options as Overrides | undefined;
  const status = given?.status ?? entry.status;
  const detail = typeof entry.detail === 'function' ? entry.detail(given as never) : entry.detail;
  const headers =
    typeof entry.headers === 'function' ? entry.headers(given as never) : entry.headers;
  return new ProblemException({
    status,
    title: status === entry.status ? entry.title : reasonPhrase(status),
    code,
    detail: given?.detail ?? detail,
    headers: headers && { ...headers },
  });
}

/** 400 validation_failed, with each field at fault. */
export class ValidationFailedException extends ProblemException {
  constructor(errors: FieldError[]) {
    const { status, title, detail } = PROBLEMS.validation_failed;
    super({ status, title, code: 'validation_failed', detail, errors });
  }
}

/**
 * What a store failure answers with: the catalogue entry of the same code, but for a read
 * receipt beyond the last seq, which is the client's mistake in one field. A StoreErrorCode
 * added without an entry here does not compile.
 */
export function storeProblem(error: StoreError): ProblemException {
  if (error.code === 'seq_beyond_last') {
    return new ValidationFailedException([
      { field: 'seq', message: "seq must not be beyond the conversation's last seq" },
    ]);
  }
  return problem(error.code);
}

/** Codes for statuses the framework raises without one of ours; their detail is the status's phrase. */
const FRAMEWORK_CODES: Partial<Record<number, ProblemCode>> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'too_many_requests',
};

/**
 * The problem an error answers with: its own, its store failure's, or for the framework's
 * HttpExceptions below 500 one by status (404 is a route that does not exist). Undefined for
 * anything else: a bug, which the filter logs and answers with internal_error.
 */
export function problemOf(error: unknown): ProblemException | undefined {
  if (error instanceof ProblemException) {
    return error;
  }
  if (error instanceof StoreError) {
    return storeProblem(error);
  }
  if (error instanceof HttpException) {
    const status = error.getStatus();
    if (status === 404) {
      return problem('not_found');
    }
    if (status < 500) {
      // Without the entry's headers: the framework's 401 never said WWW-Authenticate.
      return new ProblemException({
        status,
        title: reasonPhrase(status),
        code: FRAMEWORK_CODES[status] ?? 'bad_request',
        detail: reasonPhrase(status),
      });
    }
  }
  return undefined;
}
