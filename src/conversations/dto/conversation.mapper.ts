import { canonicalCustomer, statusAt } from '../records/conversation-state';
import type { StoredCounters, StoredState } from '../records/conversation-state';
import type { ConversationHeader, InboxRow } from '../records/conversation.codec';
import type { ConversationStateDto, InboxConversationDto } from './inbox.dto';
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
 * Who reads a conversation's state: an API key (or anyone in open mode) sees it all; a
 * customer token its status, snooze, its own unread count and the customer's name.
 */
export type StateViewer = 'agent' | 'customer';

/** The state fields of an answer, as `viewer` may see them at `now`. */
export function stateFields(
  state: StoredState,
  counters: StoredCounters,
  viewer: StateViewer,
  now: number,
): Record<string, unknown> {
  const { status, snoozedUntil } = statusAt(state, now);
  if (viewer === 'customer') {
    return {
      status,
      snoozedUntil,
      customer: state.customer.name === undefined ? {} : { name: state.customer.name },
      unread: { customer: counters.unreadCustomer },
    };
  }
  return {
    status,
    snoozedUntil,
    assignee: state.assignee || null,
    team: state.team || null,
    customer: canonicalCustomer(state.customer),
    unread: { customer: counters.unreadCustomer, agent: counters.unreadAgent },
    waitingSince: counters.waitingSince || null,
  };
}

/** A row of the inbox list or feed (InboxConversationDto). */
export function toInboxConversationDto(row: InboxRow, now: number): InboxConversationDto {
  return {
    id: row.id,
    conversationId: row.id,
    seq: row.seq,
    ...stateFields(row.state, row.counters, 'agent', now),
    createdAt: row.createdAt,
    lastActivityAt: row.lastActivityAt,
    messageCount: row.messageCount,
    lastMessage: row.lastMessage && {
      sender: row.lastMessage.sender,
      seq: row.lastMessage.seq,
      content: row.lastMessage.content,
    },
  } as InboxConversationDto;
}

/** A PATCH or claim's answer (ConversationStateDto). */
export function toConversationStateDto(
  header: ConversationHeader,
  now: number,
): ConversationStateDto {
  return {
    id: header.id,
    conversationId: header.id,
    seq: header.version,
    ...stateFields(header.state, header.counters, 'agent', now),
    metadata: { ...header.state.metadata },
    createdAt: header.createdAt,
    lastActivityAt: header.lastActivityAt,
    messageCount: header.messageCount,
  } as ConversationStateDto;
}

/** A conversation's ETag: its life and last seq (see ConversationsService.updateState). */
export function etagOf(header: Pick<ConversationHeader, 'life' | 'version'>): string {
  return `"${header.life}.${header.version}"`;
}

/**
 * The ConversationHistoryDto as JSON text, in pieces to be written in order. The messages
 * are the store's serialized pieces, spliced in, so a read of a long history serializes
 * nothing but its header.
 */
export function toConversationHistoryJson(
  history: ConversationHistory,
  viewer: StateViewer,
  now: number,
): string[] {
  const header = JSON.stringify(headerFields(history, viewer, now));
  const pieces = history.messagesJson.slice();
  pieces[0] = `${header.slice(0, -1)},"messages":${pieces[0]}`;
  pieces[pieces.length - 1] += '}';
  return pieces;
}

/** What a read answers of a conversation besides its messages. */
function headerFields(
  header: ConversationHeader,
  viewer: StateViewer,
  now: number,
): Record<string, unknown> {
  return {
    id: header.id,
    conversationId: header.id,
    createdAt: header.createdAt,
    lastActivityAt: header.lastActivityAt,
    messageCount: header.messageCount,
    lastRead: toLastReadDto(header.lastRead),
    ...stateFields(header.state, header.counters, viewer, now),
    ...(viewer === 'agent' ? { metadata: { ...header.state.metadata } } : {}),
  };
}

/**
 * A conversation's summary as a webhook carries it (conversation.created's data, and the
 * conversation in conversation.evicted): what a read answers an API key, less the messages.
 */
export function conversationSummaryJson(header: ConversationHeader, now: number): string {
  return JSON.stringify(headerFields(header, 'agent', now));
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
