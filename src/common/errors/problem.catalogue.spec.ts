import {
  HttpException,
  InternalServerErrorException,
  MethodNotAllowedException,
  NotFoundException,
  UnauthorizedException,
} from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import { StoreError, StoreErrorCode } from './store-error';
import { ProblemException } from './problem';
import {
  PROBLEMS,
  ProblemCode,
  ValidationFailedException,
  problem,
  problemOf,
  storeProblem,
} from './problem.catalogue';

const answer = (error: ProblemException) => ({
  status: error.getStatus(),
  title: error.title,
  code: error.code,
  detail: error.detail,
  headers: error.headers,
});

describe('problem catalogue', () => {
  it("titles each code with its status's reason phrase", () => {
    for (const [code, entry] of Object.entries(PROBLEMS)) {
      expect({ code, title: entry.title }).toEqual({ code, title: STATUS_CODES[entry.status] });
    }
  });

  it('makes a problem from its entry, with fresh headers', () => {
    const first = problem('store_unavailable');
    expect(first).toBeInstanceOf(ProblemException);
    expect(answer(first)).toEqual({
      status: 503,
      title: 'Service Unavailable',
      code: 'store_unavailable',
      detail: 'The store did not answer in time. Retry later.',
      headers: { 'Retry-After': '1' },
    });
    expect(first.headers).not.toBe(problem('store_unavailable').headers);
    expect(problem('conversation_not_found').headers).toBeUndefined();
  });

  it('makes detail and headers from what the raising site knows', () => {
    expect(answer(problem('rate_limited', { limit: 5, windowMs: 1_500, retryAfter: '2' }))).toEqual(
      {
        status: 429,
        title: 'Too Many Requests',
        code: 'rate_limited',
        detail: 'Too many requests: at most 5 in 1.5 s. Retry after 2 s.',
        headers: { 'Retry-After': '2' },
      },
    );
    expect(
      problem('too_many_streams', { held: 3, limit: 'MAX_EVENT_STREAMS_PER_CLIENT' }).detail,
    ).toBe(
      'This client holds 3 event streams here, the most it may (MAX_EVENT_STREAMS_PER_CLIENT): close one first.',
    );
    expect(problem('unauthorized', { detail: 'other words' }).detail).toBe('other words');
    expect(answer(problem('bad_request', { status: 403 }))).toMatchObject({
      status: 403,
      title: 'Forbidden',
      code: 'bad_request',
    });
  });

  it.each<[StoreErrorCode, number, ProblemCode]>([
    ['conversation_not_found', 404, 'conversation_not_found'],
    ['message_not_found', 404, 'message_not_found'],
    ['conversation_full', 409, 'conversation_full'],
    ['idempotency_key_reused', 422, 'idempotency_key_reused'],
    ['capacity_exceeded', 503, 'capacity_exceeded'],
    ['store_unavailable', 503, 'store_unavailable'],
    ['replication_timeout', 503, 'replication_timeout'],
    ['store_full', 507, 'store_full'],
    ['seq_beyond_last', 400, 'validation_failed'],
  ])('answers the store failure %s with %i %s', (storeCode, status, code) => {
    const found = problemOf(new StoreError(storeCode, 'for the logs only'));
    expect(found).toBeInstanceOf(ProblemException);
    expect({ status: found?.getStatus(), code: found?.code }).toEqual({ status, code });
    expect(found?.detail).not.toContain('logs');
  });

  it('answers seq_beyond_last as the seq field at fault', () => {
    const found = storeProblem(new StoreError('seq_beyond_last'));
    expect(found).toBeInstanceOf(ValidationFailedException);
    expect(found.errors).toEqual([
      { field: 'seq', message: "seq must not be beyond the conversation's last seq" },
    ]);
  });

  it("answers the framework's 4xx by status, without the entries' headers", () => {
    expect(answer(problemOf(new NotFoundException('Cannot GET /x')) as ProblemException)).toEqual({
      status: 404,
      title: 'Not Found',
      code: 'not_found',
      detail: 'No such route.',
      headers: undefined,
    });
    expect(answer(problemOf(new UnauthorizedException()) as ProblemException)).toEqual({
      status: 401,
      title: 'Unauthorized',
      code: 'unauthorized',
      detail: 'Unauthorized',
      headers: undefined,
    });
    expect(problemOf(new MethodNotAllowedException())?.code).toBe('method_not_allowed');
    expect(problemOf(new HttpException('teapot', 418))?.code).toBe('bad_request');
  });

  it('leaves anything else to the filter as unexpected', () => {
    const ours = problem('conversation_full');
    expect(problemOf(ours)).toBe(ours);
    expect(problemOf(new InternalServerErrorException())).toBeUndefined();
    expect(problemOf(new Error('disk on fire'))).toBeUndefined();
    expect(problemOf('a string')).toBeUndefined();
  });
});
