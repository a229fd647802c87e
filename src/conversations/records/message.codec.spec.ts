import { randomUUID } from 'node:crypto';
import {
  AppendedMessage,
  MESSAGE_FIELDS,
  MessageDraft,
  messageJson,
  messageJsonAroundSeq,
  messageJsonPrefix,
  messageJsonWithSeq,
  StoredMessage,
} from './message.codec';

const TRICKY = ['plain', '"seq":0,"seq":1', 'quote " backslash \\ \n 😀 \u2028 \u0000', ''];

function draft(content: string): MessageDraft {
  return { id: randomUUID(), sender: 'agent', content, timestamp: 5, now: 7 };
}

describe('the stored message codec', () => {
  it('writes every field, in MESSAGE_FIELDS order, and the id first', () => {
    for (const content of TRICKY) {
      const message = AppendedMessage.posted('c', draft(content), 3);
      const fields: StoredMessage = JSON.parse(message.json) as StoredMessage;
      expect(Object.keys(fields)).toEqual(Object.keys(MESSAGE_FIELDS));
      expect(fields).toEqual({
        id: message.id,
        conversationId: 'c',
        sender: 'agent',
        content,
        timestamp: 5,
        seq: 3,
        createdAt: 7,
      });
      expect(message.json.startsWith(messageJsonPrefix(message.id))).toBe(true);
    }
  });

  it("makes a post's text around its seq as append-7.lua does, whatever the content", () => {
    for (const content of TRICKY) {
      const input = draft(content);
      const [head, tail] = messageJsonAroundSeq('c', input);
      for (const seq of [1, 42, 9_999_999_999]) {
        expect(messageJsonWithSeq(head, seq, tail)).toBe(
          AppendedMessage.posted('c', input, seq).json,
        );
      }
    }
  });

  it("keeps the text out of the answer's own properties: they are the StoredMessage's", () => {
    const posted = AppendedMessage.posted('c', draft('hi'), 1);
    expect(JSON.stringify(posted)).toBe(posted.json);
    expect(posted.replayed).toBeUndefined();

    // Across the IPC channel: the fields go, the text is made again, the same.
    const received = AppendedMessage.fromFields(
      JSON.parse(JSON.stringify(posted)) as StoredMessage,
    );
    expect(received.json).toBe(posted.json);
    expect(received).toEqual(posted);

    const replayed = AppendedMessage.replayed(posted.json);
    expect(replayed).toEqual({ ...posted, replayed: true });
    expect(replayed.json).toBe(posted.json);
    const again = AppendedMessage.fromFields(
      JSON.parse(JSON.stringify(replayed)) as StoredMessage & { replayed: true },
    );
    expect(again).toEqual(replayed);
    expect(again.json).toBe(posted.json);
  });

  it('is the only encoder: any StoredMessage gives the text a post of it stores', () => {
    const posted = AppendedMessage.posted('c', draft('x'), 9);
    const copy: StoredMessage = { ...posted };
    expect(messageJson(copy)).toBe(posted.json);
  });
});
