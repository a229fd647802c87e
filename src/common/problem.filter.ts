import {
  ArgumentsHost,
  Catch,
  ExceptionFilter,
  HttpException,
  HttpStatus,
  Logger,
} from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import type { Request, Response } from 'express';
import {
  FieldError,
  PROBLEM_CONTENT_TYPE,
  ProblemBody,
  ProblemException,
  problemType,
} from './problem';
import { redactUrl } from './redact';
import { requestIdOf } from './request-id';

interface Problem {
  status: number;
  code: string;
  detail: string;
  errors?: FieldError[];
  headers?: Record<string, string>;
}

/** Codes for statuses raised without one of our own (unknown route, framework errors). */
const CODE_BY_STATUS: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'too_many_requests',
};

function generic(status: number): Problem {
  return {
    status,
    code: CODE_BY_STATUS[status] ?? (status >= 500 ? 'internal_error' : 'bad_request'),
    detail: STATUS_CODES[status] ?? 'Error',
  };
}

/**
 * The one catch-all filter: every error leaves as RFC 9457 problem+json. Known errors keep
 * their status and code; anything else is logged with its cause and answered with a generic
 * 500 that reveals nothing of it.
 */
@Catch()
export class ProblemExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger(ProblemExceptionFilter.name);

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    const request = host.switchToHttp().getRequest<Request>();
    const problem = this.toProblem(exception, request);
    if (response.headersSent) {
      response.end();
      return;
    }
    const body: ProblemBody = {
      type: problemType(problem.code),
      title: STATUS_CODES[problem.status] ?? 'Error',
      status: problem.status,
      detail: problem.detail,
      code: problem.code,
    };
    const requestId = requestIdOf(request);
    if (requestId) {
      body.requestId = requestId;
    }
    if (problem.errors) {
      body.errors = problem.errors;
    }
    for (const [name, value] of Object.entries(problem.headers ?? {})) {
      response.setHeader(name, value);
    }
    response.status(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
  }

  private toProblem(exception: unknown, request: Request): Problem {
    if (exception instanceof ProblemException) {
      return {
        status: exception.getStatus(),
        code: exception.code,
        detail: exception.detail,
        errors: exception.errors,
        headers: exception.headers,
      };
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      if (status === HttpStatus.NOT_FOUND) {
        return { status, code: 'not_found', detail: 'No such route.' };
      }
      if (status < 500) {
        return generic(status);
      }
    }
    this.logger.error(
      {
        // Never the credential an event stream may carry in its query; no header is logged.
        message: `Unhandled error on ${request.method} ${redactUrl(request.originalUrl ?? request.url)}`,
        requestId: requestIdOf(request),
      },
      exception instanceof Error ? exception.stack : String(exception),
    );
    return generic(HttpStatus.INTERNAL_SERVER_ERROR);
  }
}
