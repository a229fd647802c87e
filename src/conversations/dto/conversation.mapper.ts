import {
  AppendedMessage,
  ConversationHistory,
  ConversationSummary,
  LastRead,
  MessageJson,
  MessagePage,
  StoredMessage,
} from '../conversation.repository';
import {
  ConversationDto,
  CreatedConversationDto,
  DeleteMessageResponseDto,
  MessageDto,
  ReadStateDto,
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

export function toCreatedConversationDto(
  summary: ConversationSummary,
  customerToken: string,
): CreatedConversationDto {
  return { ...toConversationDto(summary), customerToken };
}

/**
 * A stored message is its own wire form: every store keeps it as its MessageJson
 * (records/message.codec.ts), which reads splice in and a post answers, so this mapping must
 * stay the identity on StoredMessage's fields. A test holds the two together.
 */
export function toMessageDto(message: StoredMessage): MessageDto {
  return {
    id: message.id,
    conversationId: message.conversationId,
    sender: message.sender,
    content: message.content,
    timestamp: message.timestamp,
    seq: message.seq,
    createdAt: message.createdAt,
  };
}

/** A posted message's MessageDto as JSON text: the text its store keeps (see toMessageDto). */
export function toMessageJson(message: AppendedMessage): MessageJson {
  return message.json;
}

/**
 * The ConversationHistoryDto as JSON text, in pieces to be written in order. The messages
 * are the store's serialized pieces, spliced in, so a read of a long history serializes
 * nothing but its header.
 */
export function toConversationHistoryJson(history: ConversationHistory): string[] {
  const header = JSON.stringify({
    id: history.id,
    conversationId: history.id,
    createdAt: history.createdAt,
    lastActivityAt: history.lastActivityAt,
    messageCount: history.messageCount,
    lastRead: toLastReadDto(history.lastRead),
  });
  const pieces = history.messagesJson.slice();
  pieces[0] = `${header.slice(0, -1)},"messages":${pieces[0]}`;
  pieces[pieces.length - 1] += '}';
  return pieces;
}

function toLastReadDto(lastRead: LastRead): LastRead {
  return { customer: lastRead.customer, agent: lastRead.agent };
}

export function toReadStateDto(lastRead: LastRead): ReadStateDto {
  return { lastRead: toLastReadDto(lastRead) };
}

export function toDeleteMessageResponseDto(messageId: string): DeleteMessageResponseDto {
  return { success: true, messageId };
}

/** The MessagePageDto as JSON text, around the page's already serialized messages. */
export function toMessagePageJson(page: MessagePage): string[] {
  return ['{"messages":', page.messagesJson, `,"hasMore":${page.hasMore}}`];
}
