import { HttpStatus, Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AppConfig, appConfig } from '../config/app.config';
import { issueCustomerToken } from '../access/customer-tokens';
import { Clock } from '../common/clock';
import { ProblemException, ValidationFailedException } from '../common/problem';
import { StoreError, StoreErrorCode } from './conversation.errors';
import {
  AppendedMessage,
  ConversationHistory,
  ConversationRepository,
  CreatedConversation,
  DeletedMessage,
  IdempotentWrite,
  LastRead,
  MessagePage,
} from './conversation.repository';
import { CreateMessageDto } from './dto/create-message.dto';
import { PAGE_LIMIT_DEFAULT, PageQueryDto } from './dto/page-query.dto';
import { ReadDto, TypingDto } from './dto/signal.dto';
import { conversationIdFor } from './idempotency';
import { TypingGate } from './typing-gate';

/** Seconds a client is told to wait when the store is full: about one eviction tick. */
const CAPACITY_RETRY_AFTER_SECONDS = 60;

const STORE_PROBLEMS: Record<StoreErrorCode, () => ProblemException> = {
  conversation_not_found: () =>
    new ProblemException(HttpStatus.NOT_FOUND, 'conversation_not_found', 'No such conversation.'),
  message_not_found: () =>
    new ProblemException(
      HttpStatus.NOT_FOUND,
      'message_not_found',
      'No such message in this conversation.',
    ),
  conversation_full: () =>
    new ProblemException(
      HttpStatus.CONFLICT,
      'conversation_full',
      'The conversation holds the maximum number of messages.',
    ),
  idempotency_key_reused: () =>
    new ProblemException(
      HttpStatus.UNPROCESSABLE_ENTITY,
      'idempotency_key_reused',
      'This Idempotency-Key was used with a different request (method, path or body).',
    ),
  capacity_exceeded: () =>
    new ProblemException(
      HttpStatus.SERVICE_UNAVAILABLE,
      'capacity_exceeded',
      'The server holds the maximum number of conversations. Retry later.',
      undefined,
      { 'Retry-After': String(CAPACITY_RETRY_AFTER_SECONDS) },
    ),
  store_full: () =>
    new ProblemException(
      HttpStatus.INSUFFICIENT_STORAGE,
      'store_full',
      'The store is full: nothing was written. Retry later, once inactive conversations are evicted or messages deleted.',
      undefined,
      { 'Retry-After': String(CAPACITY_RETRY_AFTER_SECONDS) },
    ),
  replication_timeout: () =>
    new ProblemException(
      HttpStatus.SERVICE_UNAVAILABLE,
      'replication_timeout',
      'The write was not confirmed by enough Redis replicas in time: it may or may not have been applied. Retrying with the same Idempotency-Key is safe.',
      undefined,
      { 'Retry-After': '1' },
    ),
  seq_beyond_last: () =>
    new ValidationFailedException([
      { field: 'seq', message: "seq must not be beyond the conversation's last seq" },
    ]),
  store_unavailable: () =>
    new ProblemException(
      HttpStatus.SERVICE_UNAVAILABLE,
      'store_unavailable',
      'The store did not answer in time. Retry later.',
      undefined,
      { 'Retry-After': '1' },
    ),
};

export function conversationNotFound(): ProblemException {
  return STORE_PROBLEMS.conversation_not_found();
}

/** The HTTP problem for a store error; anything else unchanged. */
export function toProblem(error: unknown): unknown {
  return error instanceof StoreError ? STORE_PROBLEMS[error.code]() : error;
}

/** A store call's result, its StoreError turned into the problem the client gets. */
export async function fromStore<T>(operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch (error) {
    throw toProblem(error);
  }
}

export function messageNotFound(): ProblemException {
  return STORE_PROBLEMS.message_not_found();
}

/** Counts code points, so an emoji is one character as a user would count it. */
function characterCount(text: string, atLeast: number): number {
  if (text.length <= atLeast) {
    return text.length; // never more code points than code units
  }
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    // A high surrogate followed by a low one is a single code point.
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

@Injectable()
export class ConversationsService {
  private readonly typingGate = new TypingGate();

  constructor(
    private readonly repository: ConversationRepository,
    private readonly clock: Clock,
    @Inject(appConfig.KEY) private readonly config: AppConfig,
  ) {}

  /**
   * The new conversation, and the customer token that opens it (of which the store keeps the
   * hash). A keyed create's retry gets the same conversation with a new token, which replaces
   * the first: the first was never kept, and only the key's own caller can replay it.
   */
  async createConversation(idempotency?: IdempotentWrite): Promise<{
    conversation: CreatedConversation;
    customerToken: string;
  }> {
    const id = idempotency ? conversationIdFor(idempotency.key) : randomUUID();
    const { token, hash } = issueCustomerToken(id);
    const conversation = await fromStore(
      this.repository.createConversation({
        id,
        now: this.clock.now(),
        maxConversations: this.config.MAX_CONVERSATIONS,
        customerTokenHash: hash,
        idempotency,
      }),
    );
    return { conversation, customerToken: token };
  }

  async getConversation(conversationId: string): Promise<ConversationHistory> {
    const history = await fromStore(this.repository.getConversation(conversationId));
    if (!history) {
      throw conversationNotFound();
    }
    return history;
  }

  async getPage(conversationId: string, query: PageQueryDto): Promise<MessagePage> {
    if (query.after !== undefined && query.before !== undefined) {
      throw new ValidationFailedException([
        { field: 'before', message: 'give at most one cursor: after or before' },
      ]);
    }
    const page = await fromStore(
      this.repository.getPage(conversationId, {
        after: query.after,
        before: query.before,
        limit: query.limit ?? PAGE_LIMIT_DEFAULT,
      }),
    );
    if (!page) {
      throw conversationNotFound();
    }
    return page;
  }

  async postMessage(
    conversationId: string,
    dto: CreateMessageDto,
    idempotency?: IdempotentWrite,
  ): Promise<AppendedMessage> {
    const now = this.clock.now();
    this.checkMessage(dto, now);
    return fromStore(
      this.repository.appendMessage(conversationId, {
        id: randomUUID(),
        sender: dto.sender,
        content: dto.content,
        timestamp: dto.timestamp ?? now,
        now,
        maxMessages: this.config.MAX_MESSAGES_PER_CONVERSATION,
        idempotency,
      }),
    );
  }

  deleteMessage(conversationId: string, messageId: string): Promise<DeletedMessage> {
    return fromStore(this.repository.deleteMessage(conversationId, messageId, this.clock.now()));
  }

  /**
   * Moves the sender's read horizon (a change with the next seq, told as conversation.read);
   * at or below it, changes nothing. The horizons after it.
   */
  async markRead(conversationId: string, dto: ReadDto): Promise<LastRead> {
    const state = await fromStore(
      this.repository.markRead(conversationId, {
        sender: dto.sender,
        seq: dto.seq,
        now: this.clock.now(),
      }),
    );
    return state.lastRead;
  }

  /**
   * Tells every subscriber that the sender is typing (until now + TYPING_TTL_MS) or stopped.
   * A renewal within a second of the last `typing: true` this process sent is absorbed;
   * `typing: false` always goes out.
   */
  async sendTyping(conversationId: string, dto: TypingDto): Promise<void> {
    const now = this.clock.now();
    const typing = dto.typing ?? true;
    const key = `${conversationId} ${dto.sender}`;
    if (!typing) {
      this.typingGate.forget(key);
    } else if (!this.typingGate.admit(key, now)) {
      return;
    }
    try {
      await fromStore(
        this.repository.sendTyping({
          conversationId,
          sender: dto.sender,
          typing,
          expiresAt: now + this.config.TYPING_TTL_MS,
        }),
      );
    } catch (error) {
      this.typingGate.forget(key); // not sent: the next one must not be absorbed
      throw error;
    }
  }

  /** Rules that depend on configuration or the clock, beyond what the DTO checks. */
  private checkMessage(dto: CreateMessageDto, now: number): void {
    const errors = [];
    const max = this.config.MAX_MESSAGE_LENGTH;
    if (characterCount(dto.content, max) > max) {
      errors.push({ field: 'content', message: `content must be at most ${max} characters` });
    }
    if (!dto.content.isWellFormed()) {
      errors.push({ field: 'content', message: 'content must be valid Unicode text' });
    }
    if (dto.timestamp !== undefined && dto.timestamp > now + this.config.MAX_CLOCK_SKEW_MS) {
      errors.push({
        field: 'timestamp',
        message: `timestamp must not be more than ${this.config.MAX_CLOCK_SKEW_MS} ms ahead of the server's clock`,
      });
    }
    if (errors.length > 0) {
      throw new ValidationFailedException(errors);
    }
  }
}
