import { ArgumentsHost, Catch, ExceptionFilter, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import { PROBLEM_CONTENT_TYPE, ProblemBody, ProblemException, problemType } from './problem';
import { problem, problemOf } from './problem.catalogue';
import { redactUrl } from '../logging/redact';
import { requestIdOf } from '../logging/request-id';

/**
 * The one catch-all filter: every error leaves as RFC 9457 problem+json. Known errors (our
 * problems, the store's failures, the framework's 4xx) answer with their catalogue entry
 * (problem.catalogue.ts); anything else is logged with its cause and answered with a generic
 * 500 that reveals nothing of it.
 */
@Catch()
export class ProblemExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger(ProblemExceptionFilter.name);

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    const request = host.switchToHttp().getRequest<Request>();
    const answer = problemOf(exception) ?? this.unexpected(exception, request);
    if (response.headersSent) {
      response.end();
      return;
    }
    const body: ProblemBody = {
      type: problemType(answer.code),
      title: answer.title,
      status: answer.getStatus(),
      detail: answer.detail,
      code: answer.code,
    };
    const requestId = requestIdOf(request);
    if (requestId) {
      body.requestId = requestId;
    }
    if (answer.errors) {
      body.errors = answer.errors;
    }
    if (answer.assignee !== undefined) {
      body.assignee = answer.assignee;
    }
    for (const [name, value] of Object.entries(answer.headers ?? {})) {
      response.setHeader(name, value);
    }
    response.status(body.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
  }

  private unexpected(exception: unknown, request: Request): ProblemException {
    this.logger.error(
      {
        // Never the credential an event stream may carry in its query; no header is logged.
        message: `Unhandled error on ${request.method} ${redactUrl(request.originalUrl ?? request.url)}`,
        requestId: requestIdOf(request),
      },
      exception instanceof Error ? exception.stack : String(exception),
    );
    return problem('internal_error');
  }
}
