import { applyDecorators } from '@nestjs/common';
import { ApiBearerAuth, ApiExtraModels, ApiResponse, getSchemaPath } from '@nestjs/swagger';
import { PROBLEM_CONTENT_TYPE } from './problem';
import { PROBLEMS, ProblemCode } from './problem.catalogue';
import { ProblemDto } from './problem.dto';

/**
 * A problem+json response at the code's status (from the catalogue), described as
 * `code: apiNote` unless the route says more.
 */
export function ApiProblem(code: ProblemCode, description?: string) {
  const entry: { status: number; apiNote?: string } = PROBLEMS[code];
  return ApiResponse({
    status: entry.status,
    description: description ?? (entry.apiNote ? `${code}: ${entry.apiNote}` : code),
    content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: getSchemaPath(ProblemDto) } } },
  });
}

/** Problem responses for several codes, each as the catalogue describes it. */
export const ApiProblems = (...codes: ProblemCode[]) =>
  applyDecorators(...codes.map((code) => ApiProblem(code)));

/**
 * What any route behind the global guards may answer (see AccessModule): the bearer scheme,
 * 401 for a missing or wrong credential, 429 over the rate limit.
 */
export const ApiGuarded = () =>
  applyDecorators(
    ApiExtraModels(ProblemDto),
    ApiBearerAuth(),
    ApiProblems('unauthorized', 'rate_limited'),
  );

/**
 * A route that reads a JSON body (JsonBodyParser): 400 (described here as the route says:
 * validation_failed and malformed_json), 413 and 415.
 */
export const ApiJsonBody = (badRequest: string) =>
  applyDecorators(
    ApiProblem('validation_failed', badRequest),
    ApiProblems('payload_too_large', 'unsupported_media_type'),
  );
