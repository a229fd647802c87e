import { ChangeType, ConversationChange, TypingSignal } from '../../conversation.repository';

/*
 * What a conversation's channel and its event stream carry. tellChange.lua publishes a change
 * as "<seq> <type> <JSON>" and appends it to the stream as entry <seq>-0 with `t` (the
 * change's letter) and `d` (its JSON); typing signals, which have no seq, are published as
 * "typing <JSON>".
 * twin: src/conversations/repositories/redis/scripts/includes/tellChange.lua (the forms)
 */
const TYPING_PREFIX = 'typing ';

const CHANGE_TYPES: Record<string, ChangeType> = {
  c: 'message.created',
  d: 'message.deleted',
  r: 'conversation.read',
  u: 'conversation.updated',
};

/** A typing signal as this store publishes it. */
export function typingPayload(signal: TypingSignal): string {
  return (
    TYPING_PREFIX +
    JSON.stringify({ sender: signal.sender, typing: signal.typing, expiresAt: signal.expiresAt })
  );
}

/** What the conversation's channel said: a change or a typing signal. */
export function decodePayload(
  conversationId: string,
  payload: string,
): { change: ConversationChange } | { typing: TypingSignal } {
  if (payload.startsWith(TYPING_PREFIX)) {
    const typing = JSON.parse(payload.slice(TYPING_PREFIX.length)) as Omit<
      TypingSignal,
      'conversationId'
    >;
    return { typing: { conversationId, ...typing } };
  }
  const first = payload.indexOf(' ');
  const second = payload.indexOf(' ', first + 1);
  return {
    change: {
      conversationId,
      seq: Number(payload.slice(0, first)),
      type: payload.slice(first + 1, second) as ChangeType,
      data: payload.slice(second + 1),
    },
  };
}

/** An entry of the conversation's event stream (XRANGE: its id and its fields). */
export function decodeStreamEntry(
  conversationId: string,
  [id, fields]: [string, string[]],
): ConversationChange {
  return {
    conversationId,
    seq: Number.parseInt(id, 10),
    type: CHANGE_TYPES[fields[1]],
    data: fields[3],
  };
}
