import { randomUUID } from 'node:crypto';
import type { Request } from 'express';

export const REQUEST_ID_HEADER = 'X-Request-Id';

/** What an incoming X-Request-Id may be to be kept: short, and safe in any log or header. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

const REQUEST_ID = Symbol('requestId');

type WithRequestId = Request & { [REQUEST_ID]?: string };

/**
 * Gives the request its id: the client's X-Request-Id when it is sane (1–128 characters of
 * letters, digits and `._:@/+=-`), otherwise a new UUID.
 */
export function assignRequestId(request: Request): string {
  const incoming = request.headers['x-request-id'];
  const id =
    typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
  (request as WithRequestId)[REQUEST_ID] = id;
  return id;
}

/** The id assignRequestId gave; undefined for a request that never passed it. */
export function requestIdOf(request: Request): string | undefined {
  return (request as WithRequestId)[REQUEST_ID];
}
