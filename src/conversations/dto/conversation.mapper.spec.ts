import { initialState } from '../records/conversation-state';
import { randomUUID } from 'node:crypto';
import { StoredMessage } from '../conversation.repository';
import { MESSAGE_FIELDS, messageJson } from '../records/message.codec';
import { InMemoryConversationRepository } from '../repositories/memory/in-memory-conversation.repository';
import { toConversationHistoryJson, toMessageDto, toMessageJson } from './conversation.mapper';

/** An in-memory store holding one empty conversation. */
async function oneConversation() {
  const repository = new InMemoryConversationRepository();
  const { id } = await repository.createConversation({
    id: randomUUID(),
    now: 1,
    maxConversations: 1,
  });
  return { repository, id };
}

describe('conversation mapper', () => {
  it('keeps the stored JSON of a message identical to its wire form', async () => {
    const { repository, id } = await oneConversation();
    const stored = await repository.appendMessage(id, {
      id: randomUUID(),
      sender: 'agent',
      content: 'quote " backslash \\ newline \n emoji 😀',
      timestamp: 5,
      now: 7,
      maxMessages: 10,
    });
    const history = await repository.getConversation(id);
    // What a read splices in, byte for byte, is what toMessageDto would have serialized.
    expect(history?.messagesJson.join('')).toBe(JSON.stringify([toMessageDto(stored)]));
  });

  it("answers a post with the store's own text, the same as a serialization of the DTO", async () => {
    const { repository, id } = await oneConversation();
    const contents = ['plain', 'quote " backslash \\ newline \n emoji 😀', '\u2028 \u0000 <>&'];
    for (const content of contents) {
      const stored = await repository.appendMessage(id, {
        id: randomUUID(),
        sender: 'customer',
        content,
        timestamp: 5,
        now: 7,
        maxMessages: 10,
      });
      // The answer is the text the store keeps, and that text is the wire form.
      const history = await repository.getConversation(id);
      expect(history?.messagesJson.join('')).toContain(toMessageJson(stored));
      expect(toMessageJson(stored)).toBe(JSON.stringify(toMessageDto(stored)));
    }
    // Any message's stored text, whichever store made it, is the DTO's serialization.
    expect(messageJson(message())).toBe(JSON.stringify(toMessageDto(message())));
  });

  it("maps every field of a stored message, in the stored text's order", () => {
    expect(Object.keys(toMessageDto(message()))).toEqual(Object.keys(MESSAGE_FIELDS));
  });

  it('writes a history as the ConversationHistoryDto JSON', () => {
    const message: StoredMessage = {
      id: 'm',
      conversationId: 'c',
      sender: 'customer',
      content: 'hi',
      timestamp: 1,
      seq: 1,
      createdAt: 2,
    };
    const messagesJson = JSON.stringify([message, message]);
    const pieces = [messagesJson.slice(0, 10), messagesJson.slice(10)];
    const json = toConversationHistoryJson(
      {
        id: 'c',
        createdAt: 1,
        lastActivityAt: 2,
        messageCount: 2,
        lastRead: { customer: 0, agent: 1 },
        life: 1,
        version: 2,
        state: initialState(),
        counters: { unreadCustomer: 0, unreadAgent: 1, waitingSince: 0 },
        messagesJson: pieces,
      },
      'agent',
      0,
    ).join('');
    // The store's pieces are not changed in place.
    expect(pieces.join('')).toBe(messagesJson);
    expect(JSON.parse(json)).toEqual({
      id: 'c',
      conversationId: 'c',
      createdAt: 1,
      lastActivityAt: 2,
      messageCount: 2,
      lastRead: { customer: 0, agent: 1 },
      status: 'open',
      snoozedUntil: null,
      assignee: null,
      team: null,
      customer: {},
      unread: { customer: 0, agent: 1 },
      waitingSince: null,
      metadata: {},
      messages: [message, message],
    });
    expect(Object.keys(JSON.parse(json) as object)).toEqual([
      'id',
      'conversationId',
      'createdAt',
      'lastActivityAt',
      'messageCount',
      'lastRead',
      'status',
      'snoozedUntil',
      'assignee',
      'team',
      'customer',
      'unread',
      'waitingSince',
      'metadata',
      'messages',
    ]);
  });
});

function message(): StoredMessage {
  return {
    id: 'm',
    conversationId: 'c',
    sender: 'agent',
    content: 'x',
    timestamp: 1,
    seq: 1,
    createdAt: 2,
  };
}
