import { HttpException, HttpStatus } from '@nestjs/common';

export interface FieldError {
  field: string;
  message: string;
}

/** RFC 9457 problem details, with a stable `code` and optional field `errors`. */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  errors?: FieldError[];
  /** The request's id, as in its X-Request-Id response header. */
  requestId?: string;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export function problemType(code: string): string {
  return `urn:chat-server:problem:${code.replace(/_/g, '-')}`;
}

/**
 * An HTTP error with a stable machine-readable code. Everything the API rejects on purpose
 * is one of these; the exception filter renders it as problem+json.
 */
export class ProblemException extends HttpException {
  constructor(
    status: HttpStatus,
    readonly code: string,
    readonly detail: string,
    readonly errors?: FieldError[],
    readonly headers?: Record<string, string>,
  ) {
    super(detail, status);
  }
}

export class ValidationFailedException extends ProblemException {
  constructor(errors: FieldError[]) {
    super(
      HttpStatus.BAD_REQUEST,
      'validation_failed',
      'The request is not valid: see errors for each field.',
      errors,
    );
  }
}
