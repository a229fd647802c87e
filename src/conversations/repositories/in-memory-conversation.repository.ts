import { StoreError } from '../conversation.errors';
import { ActivityIndex } from './activity-index';
import { historyPieces } from './history-pieces';
import {
  ConversationHistory,
  ConversationRepository,
  ConversationSummary,
  DeletedMessage,
  NewConversation,
  NewMessage,
  StoredMessage,
  StoreStats,
  UnchangedHistory,
} from '../conversation.repository';

/** A stored message, kept small: what ordering needs, and its JSON, made once. */
interface MessageRecord {
  readonly timestamp: number;
  /** The StoredMessage as JSON, `id` first (see idPrefix). */
  readonly json: string;
}

interface ConversationRecord {
  readonly id: string;
  readonly createdAt: number;
  lastActivityAt: number;
  lastSeq: number;
  /** Chronological: ascending timestamp, ties by seq (arrival order). */
  readonly messages: MessageRecord[];
}

/** How a message's JSON begins: StoredMessage literals below always put `id` first. */
const idPrefix = (messageId: string) => `{"id":${JSON.stringify(messageId)},`;

/**
 * Returns the string after making V8 store it as one flat run of characters. Strings built by
 * concatenation (randomUUID(), JSON.stringify) are trees of pieces several times their size
 * (a UUID: ~490 bytes instead of ~64); indexing one flattens it in place, and the next GC
 * drops the pieces. Done once for every string the store keeps.
 */
function flat(text: string): string {
  void text.at(-1);
  return text;
}

/** Default width of an activity generation (see ActivityIndex). */
const DEFAULT_GENERATION_MS = 60_000;

function summarize(record: ConversationRecord): ConversationSummary {
  return {
    id: record.id,
    createdAt: record.createdAt,
    lastActivityAt: record.lastActivityAt,
    messageCount: record.messages.length,
  };
}

/** Index at which a message with this timestamp goes: after every message not later than it. */
function insertionIndex(messages: MessageRecord[], timestamp: number): number {
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

/**
 * The in-process store. Conversations are kept in an ActivityIndex, so an eviction sweep
 * costs what it evicts, not what is stored.
 */
export class InMemoryConversationRepository extends ConversationRepository {
  readonly kind = 'in-memory';
  private readonly conversations: ActivityIndex<ConversationRecord>;

  /** @param generationMs width of an activity generation; about TTL / 30 suits eviction. */
  constructor(generationMs = DEFAULT_GENERATION_MS) {
    super();
    this.conversations = new ActivityIndex(generationMs, (record) => record.messages.length);
  }

  async createConversation(input: NewConversation): Promise<ConversationSummary> {
    if (this.conversations.size >= input.maxConversations) {
      throw new StoreError('capacity_exceeded');
    }
    const record: ConversationRecord = {
      id: flat(input.id),
      createdAt: input.now,
      lastActivityAt: input.now,
      lastSeq: 0,
      messages: [],
    };
    this.conversations.add(record);
    return summarize(record);
  }

  async getConversation(conversationId: string): Promise<ConversationHistory | null> {
    const record = this.conversations.get(conversationId);
    if (!record) {
      return null;
    }
    return {
      ...summarize(record),
      version: record.lastSeq,
      messagesJson: historyPieces(record.messages.length, (i) => record.messages[i].json),
    };
  }

  async getConversationIfChanged(
    conversationId: string,
    knownVersion: number,
  ): Promise<ConversationHistory | UnchangedHistory | null> {
    const record = this.conversations.get(conversationId);
    if (record?.lastSeq === knownVersion) {
      return { ...summarize(record), version: knownVersion, messagesJson: null };
    }
    return this.getConversation(conversationId);
  }

  async appendMessage(conversationId: string, input: NewMessage): Promise<StoredMessage> {
    const record = this.getRecord(conversationId);
    if (record.messages.length >= input.maxMessages) {
      throw new StoreError('conversation_full');
    }
    const message: StoredMessage = {
      id: input.id,
      conversationId,
      sender: input.sender,
      content: input.content,
      timestamp: input.timestamp,
      seq: ++record.lastSeq,
      createdAt: input.now,
    };
    const stored: MessageRecord = {
      timestamp: message.timestamp,
      json: flat(JSON.stringify(message)),
    };
    const { messages } = record;
    if (messages.length === 0 || messages[messages.length - 1].timestamp <= message.timestamp) {
      messages.push(stored);
    } else {
      messages.splice(insertionIndex(messages, message.timestamp), 0, stored);
    }
    this.conversations.touch(record, input.now, 1);
    return message;
  }

  async deleteMessage(
    conversationId: string,
    messageId: string,
    now: number,
  ): Promise<DeletedMessage> {
    const record = this.getRecord(conversationId);
    const { messages } = record;
    // Scanned from the newest: deletes mostly concern recent messages, and the scan is
    // bounded by MAX_MESSAGES_PER_CONVERSATION. An id index would cost memory on every message.
    const prefix = idPrefix(messageId);
    let index = messages.length - 1;
    while (index >= 0 && !messages[index].json.startsWith(prefix)) {
      index--;
    }
    if (index < 0) {
      throw new StoreError('message_not_found');
    }
    messages.splice(index, 1);
    const seq = ++record.lastSeq;
    this.conversations.touch(record, now, -1);
    return { messageId, seq };
  }

  evictInactive(cutoff: number): Promise<number> {
    return this.conversations.evictBefore(cutoff);
  }

  async stats(): Promise<StoreStats> {
    return { conversations: this.conversations.size, messages: this.conversations.weight };
  }

  private getRecord(conversationId: string): ConversationRecord {
    const record = this.conversations.get(conversationId);
    if (!record) {
      throw new StoreError('conversation_not_found');
    }
    return record;
  }
}
