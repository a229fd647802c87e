import { Param } from '@nestjs/common';
import { problem } from '../common/errors/problem.catalogue';
import { UuidOrNotFoundPipe } from '../common/validation/uuid-or-not-found.pipe';

/** The path's conversation id: a UUID (lower-cased), else 404 conversation_not_found. */
export const ConversationId = () =>
  Param('conversationId', new UuidOrNotFoundPipe(() => problem('conversation_not_found')));

/** The path's message id: a UUID (lower-cased), else 404 message_not_found. */
export const MessageId = () =>
  Param('messageId', new UuidOrNotFoundPipe(() => problem('message_not_found')));
