import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';

/**
 * The work the chat API does, hand-written with no framework, shared by the baseline servers
 * (A node:http, E Express, N NestJS, X Express with production features) so that they all do
 * exactly the same thing: the same routes' rules as the real server's DTOs, pipes and service,
 * a Map kept in activity order like the in-memory repository, and the same response bodies.
 */

export const LIMITS = {
  maxConversations: Number(process.env.MAX_CONVERSATIONS || 100_000),
  maxMessages: 10_000,
  maxMessageLength: 10_000,
  maxClockSkewMs: 300_000,
  bodyLimitBytes: 64 * 1024,
};

export const JSON_TYPES = ['application/json', 'application/*+json'];
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface Reply {
  status: number;
  body: unknown;
  problem?: true;
  headers?: Record<string, string>;
}

interface FieldError {
  field: string;
  message: string;
}

type Sender = 'customer' | 'agent';
const SENDERS: readonly unknown[] = ['customer', 'agent'];
const MESSAGE_FIELDS = new Set(['sender', 'content', 'timestamp']);
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Message {
  id: string;
  sender: Sender;
  content: string;
  timestamp: number;
  seq: number;
  createdAt: number;
}

interface Conversation {
  id: string;
  createdAt: number;
  lastActivityAt: number;
  lastSeq: number;
  messages: Message[];
  /** Only with ChatCoreOptions.issueToken: what is kept of the customer token. */
  customerTokenHash?: string;
}

export interface ChatCoreOptions {
  /**
   * Issues a customer token for a new conversation, as the real server does (configuration X):
   * its hash is stored with the conversation and the token returned in the create's body.
   * Absent (A, E, N): no token, and a create does exactly what it did before.
   */
  issueToken?: (conversationId: string) => { token: string; hash: string };
}

export function problem(
  status: number,
  code: string,
  detail: string,
  errors?: FieldError[],
): Reply {
  const body = {
    type: `urn:chat-server:problem:${code.replace(/_/g, '-')}`,
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    code,
    ...(errors ? { errors } : {}),
  };
  return { status, body, problem: true };
}

export const PROBLEMS = {
  routeNotFound: () => problem(404, 'not_found', 'No such route.'),
  malformedJson: () => problem(400, 'malformed_json', 'The body is not valid JSON.'),
  payloadTooLarge: () =>
    problem(413, 'payload_too_large', 'The body is larger than the server accepts (BODY_LIMIT).'),
  unsupportedMediaType: () =>
    problem(
      415,
      'unsupported_media_type',
      'The body must be JSON, sent with Content-Type: application/json.',
    ),
  conversationNotFound: () => problem(404, 'conversation_not_found', 'No such conversation.'),
  messageNotFound: () => problem(404, 'message_not_found', 'No such message in this conversation.'),
  invalid: (errors: FieldError[]) =>
    problem(
      400,
      'validation_failed',
      'The request is not valid: see errors for each field.',
      errors,
    ),
};

function codePoints(text: string, atLeast: number): number {
  if (text.length <= atLeast) {
    return text.length;
  }
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
      }
    }
    count++;
  }
  return count;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The DTO's rules, then the service's: a field error list, or the message to store. */
function validateMessage(
  body: unknown,
  now: number,
): FieldError[] | { sender: Sender; content: string; timestamp: number } {
  if (body !== undefined && !isObject(body)) {
    return [{ field: '(body)', message: 'the body must be a JSON object' }];
  }
  const dto = body ?? {};
  const keys = Object.keys(dto);
  const reserved = keys.filter((key) => RESERVED_KEYS.has(key));
  if (reserved.length > 0) {
    return reserved.map((field) => ({ field, message: `property ${field} should not exist` }));
  }
  const errors: FieldError[] = keys
    .filter((key) => !MESSAGE_FIELDS.has(key))
    .map((field) => ({ field, message: `property ${field} should not exist` }));
  const { sender, content, timestamp } = dto;
  if (!SENDERS.includes(sender)) {
    errors.push({ field: 'sender', message: 'sender must be one of: customer, agent' });
  }
  if (typeof content !== 'string') {
    errors.push({ field: 'content', message: 'content must be a string' });
  } else if (!/\S/.test(content)) {
    errors.push({ field: 'content', message: 'content must not be empty or only whitespace' });
  }
  if (timestamp !== undefined) {
    if (typeof timestamp !== 'number' || !Number.isInteger(timestamp)) {
      errors.push({
        field: 'timestamp',
        message: 'timestamp must be an integer number of milliseconds since the epoch',
      });
    } else if (timestamp < 0) {
      errors.push({ field: 'timestamp', message: 'timestamp must not be negative' });
    } else if (timestamp > Number.MAX_SAFE_INTEGER) {
      errors.push({ field: 'timestamp', message: 'timestamp is too large' });
    }
  }
  if (errors.length > 0) {
    return errors;
  }
  const text = content as string;
  const max = LIMITS.maxMessageLength;
  if (codePoints(text, max) > max) {
    errors.push({ field: 'content', message: `content must be at most ${max} characters` });
  }
  if (!text.isWellFormed()) {
    errors.push({ field: 'content', message: 'content must be valid Unicode text' });
  }
  if (typeof timestamp === 'number' && timestamp > now + LIMITS.maxClockSkewMs) {
    errors.push({
      field: 'timestamp',
      message: `timestamp must not be more than ${LIMITS.maxClockSkewMs} ms ahead of the server's clock`,
    });
  }
  if (errors.length > 0) {
    return errors;
  }
  return { sender: sender as Sender, content: text, timestamp: (timestamp as number) ?? now };
}

function summary(conversation: Conversation) {
  return {
    conversationId: conversation.id,
    id: conversation.id,
    createdAt: conversation.createdAt,
    lastActivityAt: conversation.lastActivityAt,
    messageCount: conversation.messages.length,
  };
}

function messageDto(conversationId: string, message: Message) {
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

/** Index after every message not later than `timestamp`. */
function insertionIndex(messages: Message[], timestamp: number): number {
  let low = 0;
  let high = messages.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (messages[mid].timestamp <= timestamp) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  return low;
}

export class ChatCore {
  /** In activity order, like the in-memory repository: activity moves a conversation last. */
  private readonly conversations = new Map<string, Conversation>();

  constructor(private readonly options: ChatCoreOptions = {}) {}

  createConversation(body: unknown): Reply {
    if (body !== undefined) {
      if (!isObject(body)) {
        return PROBLEMS.invalid([
          { field: '(body)', message: 'the body must be empty or a JSON object' },
        ]);
      }
      const unknown = Object.keys(body);
      if (unknown.length > 0) {
        return PROBLEMS.invalid(
          unknown.map((field) => ({ field, message: `property ${field} should not exist` })),
        );
      }
    }
    if (this.conversations.size >= LIMITS.maxConversations) {
      const reply = problem(
        503,
        'capacity_exceeded',
        'The server holds the maximum number of conversations. Retry later.',
      );
      return { ...reply, headers: { 'Retry-After': '60' } };
    }
    const now = Date.now();
    const conversation: Conversation = {
      id: randomUUID(),
      createdAt: now,
      lastActivityAt: now,
      lastSeq: 0,
      messages: [],
    };
    const issued = this.options.issueToken?.(conversation.id);
    if (issued) {
      conversation.customerTokenHash = issued.hash;
    }
    this.conversations.set(conversation.id, conversation);
    return {
      status: 201,
      body: issued
        ? { ...summary(conversation), customerToken: issued.token }
        : summary(conversation),
      headers: { Location: `/api/conversations/${conversation.id}` },
    };
  }

  getConversation(rawId: string): Reply {
    const conversation = this.find(rawId);
    if (!conversation) {
      return PROBLEMS.conversationNotFound();
    }
    const { id, messages } = conversation;
    return {
      status: 200,
      body: {
        id,
        conversationId: id,
        createdAt: conversation.createdAt,
        lastActivityAt: conversation.lastActivityAt,
        messageCount: messages.length,
        messages: messages.map((message) => messageDto(id, message)),
      },
    };
  }

  postMessage(rawId: string, body: unknown): Reply {
    if (!UUID.test(rawId)) {
      return PROBLEMS.conversationNotFound();
    }
    const now = Date.now();
    const input = validateMessage(body, now);
    if (Array.isArray(input)) {
      return PROBLEMS.invalid(input);
    }
    const conversation = this.find(rawId);
    if (!conversation) {
      return PROBLEMS.conversationNotFound();
    }
    const { messages } = conversation;
    if (messages.length >= LIMITS.maxMessages) {
      return problem(
        409,
        'conversation_full',
        'The conversation holds the maximum number of messages.',
      );
    }
    const message: Message = {
      id: randomUUID(),
      sender: input.sender,
      content: input.content,
      timestamp: input.timestamp,
      seq: ++conversation.lastSeq,
      createdAt: now,
    };
    if (messages.length === 0 || messages[messages.length - 1].timestamp <= message.timestamp) {
      messages.push(message);
    } else {
      messages.splice(insertionIndex(messages, message.timestamp), 0, message);
    }
    this.touch(conversation, now);
    return { status: 201, body: messageDto(conversation.id, message) };
  }

  deleteMessage(rawId: string, rawMessageId: string): Reply {
    const conversation = this.find(rawId);
    if (!conversation) {
      return PROBLEMS.conversationNotFound();
    }
    if (!UUID.test(rawMessageId)) {
      return PROBLEMS.messageNotFound();
    }
    const messageId = rawMessageId.toLowerCase();
    const { messages } = conversation;
    let index = messages.length - 1;
    while (index >= 0 && messages[index].id !== messageId) {
      index--;
    }
    if (index < 0) {
      return PROBLEMS.messageNotFound();
    }
    messages.splice(index, 1);
    conversation.lastSeq++;
    this.touch(conversation, Date.now());
    return { status: 200, body: { success: true, messageId } };
  }

  private find(rawId: string): Conversation | undefined {
    return UUID.test(rawId) ? this.conversations.get(rawId.toLowerCase()) : undefined;
  }

  private touch(conversation: Conversation, now: number): void {
    conversation.lastActivityAt = Math.max(conversation.lastActivityAt, now);
    this.conversations.delete(conversation.id);
    this.conversations.set(conversation.id, conversation);
  }
}
