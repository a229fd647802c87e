import {
  ConversationHistory,
  ConversationSummary,
  StoredMessage,
} from '../conversation.repository';
import {
  ConversationDto,
  ConversationHistoryDto,
  DeleteMessageResponseDto,
  MessageDto,
} from './conversation.dto';

// Explicit field lists: the wire format changes only when these functions do.

export function toConversationDto(summary: ConversationSummary): ConversationDto {
  return {
    conversationId: summary.id,
    id: summary.id,
    createdAt: summary.createdAt,
    lastActivityAt: summary.lastActivityAt,
    messageCount: summary.messageCount,
  };
}

export function toMessageDto(conversationId: string, message: StoredMessage): MessageDto {
  return {
    id: message.id,
    conversationId,
    sender: message.sender,
    content: message.content,
    timestamp: message.timestamp,
    seq: message.seq,
    createdAt: message.createdAt,
  };
}

export function toConversationHistoryDto(history: ConversationHistory): ConversationHistoryDto {
  return {
    id: history.id,
    conversationId: history.id,
    createdAt: history.createdAt,
    lastActivityAt: history.lastActivityAt,
    messageCount: history.messageCount,
    messages: history.messages.map((message) => toMessageDto(history.id, message)),
  };
}

export function toDeleteMessageResponseDto(messageId: string): DeleteMessageResponseDto {
  return { success: true, messageId };
}
