import { initialState } from './records/conversation-state';
import { HttpStatus } from '@nestjs/common';
import fc from 'fast-check';
import { hashToken } from '../access/customer-tokens';
import { ProblemException } from '../common/errors/problem';
import { problemOf } from '../common/errors/problem.catalogue';
import { validateConfig } from '../config/app.config';
import { settingsOf } from '../config/app.settings';
import { StoreError } from '../common/errors/store-error';
import { ConversationsService } from './conversations.service';
import { CreateMessageDto } from './dto/create-message.dto';
import { InMemoryConversationRepository } from './repositories/memory/in-memory-conversation.repository';
import { FakeClock } from '../../test/utils/fake-clock';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const T0 = 1_764_201_600_000;
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

function message(content: string, timestamp?: number): CreateMessageDto {
  return { sender: 'customer', content, ...(timestamp === undefined ? {} : { timestamp }) };
}

/**
 * Awaits an operation that must fail and returns the problem the client gets for it (a store
 * failure is mapped by the exception filter, as here).
 */
async function problemFrom(operation: () => Promise<unknown>): Promise<ProblemException> {
  let caught: unknown;
  try {
    await operation();
  } catch (error) {
    caught = error;
  }
  const problem = problemOf(caught);
  expect(problem).toBeInstanceOf(ProblemException);
  return problem as ProblemException;
}

function setup(env: Record<string, string> = {}) {
  const repository = new InMemoryConversationRepository();
  const clock = new FakeClock(T0);
  const config = validateConfig({ LOG_LEVEL: 'silent', ...env });
  const { limits, events } = settingsOf(config);
  const service = new ConversationsService(repository, clock, limits, events);
  return { repository, clock, service };
}

describe('ConversationsService', () => {
  describe('conversations and messages', () => {
    it('creates a conversation with a UUID v4 id at the clock time', async () => {
      const { service, repository } = setup();

      const { conversation, customerToken } = await service.createConversation();

      expect(conversation).toEqual({
        id: expect.stringMatching(UUID_V4),
        createdAt: T0,
        lastActivityAt: T0,
        messageCount: 0,
      });
      // The token names its conversation; the store keeps its hash, not the token.
      expect(customerToken.startsWith(`${conversation.id}.`)).toBe(true);
      const stored = await repository.customerToken(conversation.id);
      expect(stored?.hash).toBe(hashToken(customerToken));
      expect(stored?.hash).not.toContain(customerToken.split('.')[1]);
    });

    it('posts a message with the clock time as default timestamp and createdAt', async () => {
      const { service, clock } = setup();
      const {
        conversation: { id },
      } = await service.createConversation();
      clock.time += 500;

      const stored = await service.postMessage(id, message('hello'));

      expect(stored).toEqual({
        id: expect.stringMatching(UUID_V4),
        conversationId: id,
        sender: 'customer',
        content: 'hello',
        timestamp: T0 + 500,
        seq: 1,
        createdAt: T0 + 500,
      });
      expect(await service.getConversation(id)).toEqual({
        id,
        createdAt: T0,
        lastActivityAt: T0 + 500,
        messageCount: 1,
        lastRead: { customer: 0, agent: 0 },
        life: expect.any(Number) as number,
        version: 1,
        state: initialState(),
        counters: { unreadCustomer: 0, unreadAgent: 1, waitingSince: T0 + 500 },
        messagesJson: [JSON.stringify([stored])],
      });
    });

    it('deletes a message and returns its id with the next seq', async () => {
      const { service } = setup();
      const {
        conversation: { id },
      } = await service.createConversation();
      const stored = await service.postMessage(id, message('bye'));

      expect(await service.deleteMessage(id, stored.id)).toEqual({ messageId: stored.id, seq: 2 });
      expect((await service.getConversation(id)).messagesJson).toEqual(['[]']);
    });
  });

  describe('store errors as problems', () => {
    it('conversation_not_found (404) when reading an unknown conversation', async () => {
      const { service } = setup();

      const problem = await problemFrom(() => service.getConversation(UNKNOWN_ID));

      expect(problem.getStatus()).toBe(HttpStatus.NOT_FOUND);
      expect(problem.code).toBe('conversation_not_found');
      expect(problem.detail).toBe('No such conversation.');
      expect(problem.headers).toBeUndefined();
    });

    it('conversation_not_found (404) when posting to or deleting in an unknown conversation', async () => {
      const { service } = setup();

      for (const operation of [
        () => service.postMessage(UNKNOWN_ID, message('hi')),
        () => service.deleteMessage(UNKNOWN_ID, UNKNOWN_ID),
      ]) {
        const problem = await problemFrom(operation);
        expect(problem.getStatus()).toBe(HttpStatus.NOT_FOUND);
        expect(problem.code).toBe('conversation_not_found');
      }
    });

    it('message_not_found (404) when deleting an unknown message', async () => {
      const { service } = setup();
      const {
        conversation: { id },
      } = await service.createConversation();

      const problem = await problemFrom(() => service.deleteMessage(id, UNKNOWN_ID));

      expect(problem.getStatus()).toBe(HttpStatus.NOT_FOUND);
      expect(problem.code).toBe('message_not_found');
      expect(problem.detail).toBe('No such message in this conversation.');
    });

    it('conversation_full (409) at MAX_MESSAGES_PER_CONVERSATION, without taking a seq', async () => {
      const { service } = setup({ MAX_MESSAGES_PER_CONVERSATION: '2' });
      const {
        conversation: { id },
      } = await service.createConversation();
      await service.postMessage(id, message('1'));
      const second = await service.postMessage(id, message('2'));

      const problem = await problemFrom(() => service.postMessage(id, message('3')));

      expect(problem.getStatus()).toBe(HttpStatus.CONFLICT);
      expect(problem.code).toBe('conversation_full');
      await service.deleteMessage(id, second.id);
      expect((await service.postMessage(id, message('3'))).seq).toBe(4);
    });

    it('capacity_exceeded (503, Retry-After: 60) at MAX_CONVERSATIONS', async () => {
      const { service } = setup({ MAX_CONVERSATIONS: '1' });
      await service.createConversation();

      const problem = await problemFrom(() => service.createConversation());

      expect(problem.getStatus()).toBe(HttpStatus.SERVICE_UNAVAILABLE);
      expect(problem.code).toBe('capacity_exceeded');
      expect(problem.headers).toEqual({ 'Retry-After': '60' });
    });

    it('store_unavailable (503, Retry-After: 1) when the store says so', async () => {
      const { service, repository } = setup();
      jest
        .spyOn(repository, 'getConversation')
        .mockRejectedValue(new StoreError('store_unavailable'));

      const problem = await problemFrom(() => service.getConversation(UNKNOWN_ID));

      expect(problem.getStatus()).toBe(HttpStatus.SERVICE_UNAVAILABLE);
      expect(problem.code).toBe('store_unavailable');
      expect(problem.headers).toEqual({ 'Retry-After': '1' });
    });

    it('passes any other error through unchanged', async () => {
      const { service, repository } = setup();
      const failure = new Error('disk on fire');
      jest.spyOn(repository, 'createConversation').mockRejectedValue(failure);

      let caught: unknown;
      try {
        await service.createConversation();
      } catch (error) {
        caught = error;
      }

      expect(caught).toBe(failure);
    });
  });

  describe('content length (code points, MAX_MESSAGE_LENGTH=5)', () => {
    const tooLong = { field: 'content', message: 'content must be at most 5 characters' };

    it.each([
      ['5 ASCII characters', 'abcde'],
      ['5 emoji (10 code units)', '😀😃😄😁😆'],
      ['emoji and ASCII mixed', 'a😀b😃c'],
      ['a single character', 'x'],
    ])('accepts %s', async (_name, content) => {
      const { service } = setup({ MAX_MESSAGE_LENGTH: '5' });
      const {
        conversation: { id },
      } = await service.createConversation();

      expect((await service.postMessage(id, message(content))).content).toBe(content);
    });

    it.each([
      ['6 ASCII characters', 'abcdef'],
      ['6 emoji', '😀😃😄😁😆😅'],
      ['5 emoji and a combining mark', '😀😃😄😁😆\u0301'],
    ])('refuses %s with validation_failed and stores nothing', async (_name, content) => {
      const { service, repository } = setup({ MAX_MESSAGE_LENGTH: '5' });
      const {
        conversation: { id },
      } = await service.createConversation();
      const append = jest.spyOn(repository, 'appendMessage');

      const problem = await problemFrom(async () => service.postMessage(id, message(content)));

      expect(problem.getStatus()).toBe(HttpStatus.BAD_REQUEST);
      expect(problem.code).toBe('validation_failed');
      expect(problem.errors).toEqual([tooLong]);
      expect(append).not.toHaveBeenCalled();
    });

    it('counts a lone surrogate as one character and refuses it as invalid Unicode', async () => {
      const { service } = setup({ MAX_MESSAGE_LENGTH: '5' });
      const {
        conversation: { id },
      } = await service.createConversation();

      const atLimit = await problemFrom(async () => service.postMessage(id, message('abcd\ud83d')));
      const overLimit = await problemFrom(async () =>
        service.postMessage(id, message('\ude00abcde')),
      );

      expect(atLimit.errors).toEqual([
        { field: 'content', message: 'content must be valid Unicode text' },
      ]);
      expect(overLimit.errors).toEqual([
        tooLong,
        { field: 'content', message: 'content must be valid Unicode text' },
      ]);
    });

    it('accepts exactly n <= limit code points and refuses more (property)', async () => {
      const { service } = setup({ MAX_MESSAGE_LENGTH: '5' });
      const {
        conversation: { id },
      } = await service.createConversation();
      const codePoint = fc.string({ unit: 'binary', minLength: 1, maxLength: 1 });

      await fc.assert(
        fc.asyncProperty(fc.array(codePoint, { minLength: 1, maxLength: 8 }), async (chars) => {
          const content = `x${chars.join('')}`;
          const length = [...content].length;
          if (length <= 5) {
            expect((await service.postMessage(id, message(content))).content).toBe(content);
          } else {
            const problem = await problemFrom(async () =>
              service.postMessage(id, message(content)),
            );
            expect(problem.errors).toEqual([tooLong]);
          }
        }),
        { numRuns: 200 },
      );
    });
  });

  describe('clock skew (MAX_CLOCK_SKEW_MS)', () => {
    const skewError = (ms: number) => ({
      field: 'timestamp',
      message: `timestamp must not be more than ${ms} ms ahead of the server's clock`,
    });

    it('accepts a timestamp exactly MAX_CLOCK_SKEW_MS ahead and any in the past', async () => {
      const { service } = setup({ MAX_CLOCK_SKEW_MS: '1000' });
      const {
        conversation: { id },
      } = await service.createConversation();

      const ahead = await service.postMessage(id, message('a', T0 + 1_000));
      const past = await service.postMessage(id, message('b', 0));

      expect(ahead).toMatchObject({ timestamp: T0 + 1_000, createdAt: T0 });
      expect(past).toMatchObject({ timestamp: 0, createdAt: T0 });
    });

    it('refuses a timestamp 1 ms further ahead', async () => {
      const { service } = setup({ MAX_CLOCK_SKEW_MS: '1000' });
      const {
        conversation: { id },
      } = await service.createConversation();

      const problem = await problemFrom(async () =>
        service.postMessage(id, message('a', T0 + 1_001)),
      );

      expect(problem.getStatus()).toBe(HttpStatus.BAD_REQUEST);
      expect(problem.code).toBe('validation_failed');
      expect(problem.errors).toEqual([skewError(1_000)]);
    });

    it('with MAX_CLOCK_SKEW_MS=0 accepts the current time and refuses 1 ms ahead', async () => {
      const { service } = setup({ MAX_CLOCK_SKEW_MS: '0' });
      const {
        conversation: { id },
      } = await service.createConversation();

      expect((await service.postMessage(id, message('now', T0))).timestamp).toBe(T0);
      const problem = await problemFrom(async () => service.postMessage(id, message('x', T0 + 1)));
      expect(problem.errors).toEqual([skewError(0)]);
    });

    it('measures the skew against the clock at the time of the post', async () => {
      const { service, clock } = setup({ MAX_CLOCK_SKEW_MS: '1000' });
      const {
        conversation: { id },
      } = await service.createConversation();
      clock.time += 5_000;

      expect((await service.postMessage(id, message('a', T0 + 6_000))).timestamp).toBe(T0 + 6_000);
    });

    it('reports length and skew problems together', async () => {
      const { service } = setup({ MAX_MESSAGE_LENGTH: '2', MAX_CLOCK_SKEW_MS: '0' });
      const {
        conversation: { id },
      } = await service.createConversation();

      const problem = await problemFrom(async () =>
        service.postMessage(id, message('abc', T0 + 1)),
      );

      expect(problem.errors).toEqual([
        { field: 'content', message: 'content must be at most 2 characters' },
        skewError(0),
      ]);
    });
  });

  describe('typing and read receipts', () => {
    it('sends typing until now + TYPING_TTL_MS, absorbs renewals within a second, never a stop', async () => {
      const { service, repository, clock } = setup({ TYPING_TTL_MS: '2000' });
      const {
        conversation: { id },
      } = await service.createConversation();
      const sent: string[] = [];
      repository.watch(id, {
        change: () => undefined,
        gap: () => undefined,
        typing: (signal) => sent.push(`${signal.sender} ${signal.typing} ${signal.expiresAt - T0}`),
      });

      await service.sendTyping(id, { sender: 'agent' });
      clock.advance(400);
      await service.sendTyping(id, { sender: 'agent', typing: true }); // absorbed
      await service.sendTyping(id, { sender: 'customer' }); // another sender
      await service.sendTyping(id, { sender: 'agent', typing: false });
      await service.sendTyping(id, { sender: 'agent', typing: false });
      await service.sendTyping(id, { sender: 'agent' }); // after a stop: at once
      clock.advance(1_000);
      await service.sendTyping(id, { sender: 'agent' });

      expect(sent).toEqual([
        'agent true 2000',
        'customer true 2400',
        'agent false 2400',
        'agent false 2400',
        'agent true 2400',
        'agent true 3400',
      ]);
    });

    it('does not absorb a renewal after a refused signal', async () => {
      const { service } = setup();
      for (let i = 0; i < 2; i++) {
        const problem = await problemFrom(() =>
          service.sendTyping(UNKNOWN_ID, { sender: 'agent' }),
        );
        expect(problem.getStatus()).toBe(HttpStatus.NOT_FOUND);
      }
    });

    it('answers the horizons; a seq past the last one is a 400 validation_failed', async () => {
      const { service } = setup();
      const {
        conversation: { id },
      } = await service.createConversation();
      await service.postMessage(id, message('hi'));
      expect(await service.markRead(id, { sender: 'agent', seq: 1 })).toEqual({
        customer: 0,
        agent: 1,
      });
      const problem = await problemFrom(() => service.markRead(id, { sender: 'agent', seq: 3 }));
      expect(problem.getStatus()).toBe(HttpStatus.BAD_REQUEST);
      expect(problem.code).toBe('validation_failed');
      expect(problem.errors).toEqual([{ field: 'seq', message: expect.any(String) }]);
    });
  });

  describe('promise contract', () => {
    // Callers that chain .catch() on the returned promise never see a synchronous throw.
    it('postMessage reports validation failures as a rejected promise, not a synchronous throw', async () => {
      const { service } = setup({ MAX_MESSAGE_LENGTH: '1' });
      const {
        conversation: { id },
      } = await service.createConversation();

      let result: Promise<unknown> | undefined;
      expect(() => {
        result = service.postMessage(id, message('too long'));
      }).not.toThrow();
      const problem = await problemFrom(() => result as Promise<unknown>);
      expect(problem.code).toBe('validation_failed');
    });
  });
});
