import { applyDecorators } from '@nestjs/common';
import { ApiHeader, ApiParam } from '@nestjs/swagger';
import { ApiProblem } from '../common/errors/api-problem.decorator';
import { IDEMPOTENCY_HEADER } from './idempotency';

/** A write's 503: the store did not answer, or not enough replicas confirmed. */
export const WRITE_UNAVAILABLE =
  'store_unavailable, or replication_timeout (REDIS_WAIT_REPLICAS): the write may stand, ' +
  'retry with the same Idempotency-Key. See Retry-After';

/** The conversation in the path: a UUID, and 404 for an unknown one (`notFound` says more). */
export const ApiConversation = (notFound?: string) =>
  applyDecorators(
    ApiParam({ name: 'conversationId', format: 'uuid' }),
    ApiProblem('conversation_not_found', notFound),
  );

/** The optional Idempotency-Key header, and its 422 when a key comes back with another request. */
export const ApiIdempotent = () =>
  applyDecorators(
    ApiHeader({
      name: IDEMPOTENCY_HEADER,
      required: false,
      description:
        '1–255 visible ASCII characters; a random UUID (version 4) when sent without a credential. A retry with the same ' +
        'key and body gets the original status and body again, with `Idempotent-Replayed: true`, and creates ' +
        'nothing, however the first answer was lost; the same key with another body is a 422 ' +
        '`idempotency_key_reused`. A post keeps its key for IDEMPOTENCY_TTL_MS (at most CONVERSATION_TTL_MS), ' +
        'a create for the life of its conversation.',
    }),
    ApiProblem('idempotency_key_reused'),
  );

/** A write to a conversation: 503 when the store (or its replicas) did not confirm it, 507 when full. */
export const ApiConversationWrite = () =>
  applyDecorators(ApiProblem('store_unavailable', WRITE_UNAVAILABLE), ApiProblem('store_full'));
