import request from 'supertest';

/** A UUID v4, as the server makes ids and request ids. */
export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export interface FieldError {
  field: string;
  message: string;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  503: 'Service Unavailable',
};

const DETAILS: Record<string, string> = {
  validation_failed: 'The request is not valid: see errors for each field.',
  malformed_json: 'The body is not valid JSON.',
  payload_too_large: 'The body is larger than the server accepts (BODY_LIMIT).',
  unsupported_media_type: 'The body must be JSON, sent with Content-Type: application/json.',
  conversation_not_found: 'No such conversation.',
  message_not_found: 'No such message in this conversation.',
  conversation_full: 'The conversation holds the maximum number of messages.',
  capacity_exceeded: 'The server holds the maximum number of conversations. Retry later.',
  not_found: 'No such route.',
  forbidden: 'A customer token cannot do this; it takes an API key.',
  api_keys_required:
    'Webhooks need API_KEYS: a server open to anyone must not send requests to addresses anyone gives it.',
  webhook_not_found: 'No such webhook endpoint.',
  webhook_delivery_not_found:
    "No such delivery in this endpoint's log (it may have passed WEBHOOK_RETENTION_MS).",
  webhook_limit_reached:
    'There are as many webhook endpoints as the server allows (WEBHOOK_MAX_ENDPOINTS).',
  rotation_limit_reached:
    'The endpoint has 5 previous secrets still signing: wait until the oldest expires before rotating again.',
  precondition_failed:
    "The conversation's state changed since the ETag given in If-Match (or it is another conversation with the same id): read it again.",
};

/** Asserts the exact problem+json response for a code, with field errors for validation_failed. */
export function expectProblem(
  res: request.Response,
  status: number,
  code: string,
  errors?: FieldError[],
  detail = DETAILS[code],
): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json(;|$)/);
  expect(res.headers['x-request-id']).toMatch(UUID_V4);
  expect(res.body).toEqual({
    type: `urn:chat-server:problem:${code.replace(/_/g, '-')}`,
    title: TITLES[status],
    status,
    detail,
    code,
    ...(errors ? { errors } : {}),
    requestId: res.headers['x-request-id'],
  });
}

/** The problem's status and code, with the checks every refusal must pass (a 401's challenge). */
export function expectProblemCode(
  res: { status: number; headers: Record<string, string | string[] | undefined>; text: string },
  status: number,
  code: string,
): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(JSON.parse(res.text)).toMatchObject({ status, code });
  if (status === 401) {
    expect(res.headers['www-authenticate']).toBe('Bearer');
  }
}

/** A parsed answer: its status, its problem+json type, and its status, code and detail if given. */
export function expectProblemDetail(
  res: { status: number; headers: Record<string, string>; body: unknown },
  status: number,
  code: string,
  detail?: string,
): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, code, ...(detail ? { detail } : {}) });
}
