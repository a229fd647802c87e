import { HttpException } from '@nestjs/common';

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
  /** The one who holds the conversation (already_assigned). */
  assignee?: string;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export function problemType(code: string): string {
  return `urn:chat-server:problem:${code.replace(/_/g, '-')}`;
}

/** What a problem says, apart from the request it answers. */
export interface ProblemFields {
  status: number;
  title: string;
  code: string;
  detail: string;
  errors?: FieldError[];
  headers?: Record<string, string>;
  /** The assignee that already_assigned names. */
  assignee?: string;
}

/**
 * An HTTP error with a stable machine-readable code. Everything the API rejects on purpose
 * is one of these, made from its entry in the catalogue (problem.catalogue.ts); the
 * exception filter renders it as problem+json.
 */
export class ProblemException extends HttpException {
  readonly title: string;
  readonly code: string;
  readonly detail: string;
  readonly errors?: FieldError[];
  readonly headers?: Record<string, string>;
  readonly assignee?: string;

  constructor(fields: ProblemFields) {
    super(fields.detail, fields.status);
    this.title = fields.title;
    this.code = fields.code;
    this.detail = fields.detail;
    this.errors = fields.errors;
    this.headers = fields.headers;
    this.assignee = fields.assignee;
  }
}
