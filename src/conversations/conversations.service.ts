import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { EventSettings, LimitSettings } from '../config/app.settings';
import { issueCustomerToken } from '../access/customer-tokens';
import { Clock } from '../common/time/clock';
import { problem, ValidationFailedException } from '../common/errors/problem.catalogue';
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
import type { InitialState } from './records/conversation.codec';

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
    private readonly limits: LimitSettings,
    private readonly events: EventSettings,
  ) {}

  /**
   * The new conversation, and the customer token that opens it (of which the store keeps the
   * hash). A keyed create's retry gets the same conversation with a new token, which replaces
   * the first: the first was never kept, and only the key's own caller can replay it. An
   * `anonymous` token (minted without an API key) is marked so in the store.
   */
  now(): number {
    return this.clock.now();
  }

  async createConversation(
    idempotency?: IdempotentWrite,
    anonymous = true,
    initial?: InitialState,
  ): Promise<{
    conversation: CreatedConversation;
    customerToken: string;
  }> {
    const id = idempotency ? conversationIdFor(idempotency.key) : randomUUID();
    const { token, hash } = issueCustomerToken(id);
    const conversation = await this.repository.createConversation({
      id,
      now: this.clock.now(),
      maxConversations: this.limits.maxConversations,
      customerToken: { hash, anonymous },
      idempotency,
      initial,
    });
    return { conversation, customerToken: token };
  }

  async getConversation(conversationId: string): Promise<ConversationHistory> {
    const history = await this.repository.getConversation(conversationId);
    if (!history) {
      throw problem('conversation_not_found');
    }
    return history;
  }

  async getPage(conversationId: string, query: PageQueryDto): Promise<MessagePage> {
    if (query.after !== undefined && query.before !== undefined) {
      throw new ValidationFailedException([
        { field: 'before', message: 'give at most one cursor: after or before' },
      ]);
    }
    const page = await this.repository.getPage(conversationId, {
      after: query.after,
      before: query.before,
      limit: query.limit ?? PAGE_LIMIT_DEFAULT,
    });
    if (!page) {
      throw problem('conversation_not_found');
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
    return this.repository.appendMessage(conversationId, {
      id: randomUUID(),
      sender: dto.sender,
      content: dto.content,
      timestamp: dto.timestamp ?? now,
      now,
      maxMessages: this.limits.maxMessagesPerConversation,
      idempotency,
    });
  }

  deleteMessage(conversationId: string, messageId: string): Promise<DeletedMessage> {
    return this.repository.deleteMessage(conversationId, messageId, this.clock.now());
  }

  /**
   * Moves the sender's read horizon to the last standing message at or below the seq (a
   * change with the next seq, told as conversation.read); at or below the horizon, changes
   * nothing (see ConversationRepository.markRead). The horizons after it.
   */
  async markRead(conversationId: string, dto: ReadDto): Promise<LastRead> {
    const state = await this.repository.markRead(conversationId, {
      sender: dto.sender,
      seq: dto.seq,
      now: this.clock.now(),
    });
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
      await this.repository.sendTyping({
        conversationId,
        sender: dto.sender,
        typing,
        expiresAt: now + this.events.typingTtlMs,
      });
    } catch (error) {
      this.typingGate.forget(key); // not sent: the next one must not be absorbed
      throw error;
    }
  }

  /** Rules that depend on configuration or the clock, beyond what the DTO checks. */
  private checkMessage(dto: CreateMessageDto, now: number): void {
    const errors = [];
    const max = this.limits.maxMessageLength;
    if (characterCount(dto.content, max) > max) {
      errors.push({ field: 'content', message: `content must be at most ${max} characters` });
    }
    if (!dto.content.isWellFormed()) {
      errors.push({ field: 'content', message: 'content must be valid Unicode text' });
    }
    if (dto.timestamp !== undefined && dto.timestamp > now + this.limits.maxClockSkewMs) {
      errors.push({
        field: 'timestamp',
        message: `timestamp must not be more than ${this.limits.maxClockSkewMs} ms ahead of the server's clock`,
      });
    }
    if (errors.length > 0) {
      throw new ValidationFailedException(errors);
    }
  }
}
