export type Sender = 'customer' | 'agent';
export const SENDERS: readonly Sender[] = ['customer', 'agent'];

/** A message as every store keeps it. Its stored form is its MessageJson (see messageJson). */
export interface StoredMessage {
  id: string;
  conversationId: string;
  sender: Sender;
  content: string;
  /** When the message was written, as the client says (or the server's clock by default). */
  timestamp: number;
  /** Per-conversation change counter: every change (create, delete, read) takes the next value. */
  seq: number;
  /** When the server stored it. */
  createdAt: number;
}

/**
 * A StoredMessage as JSON text, made by messageJson alone (append-7.lua puts a seq between the
 * halves messageJsonAroundSeq cut). Every store keeps a message as this text, so a read joins
 * stored text and serializes nothing; it is also the message's wire form (MessageDto, held
 * equal by dto/conversation.mapper.spec.ts).
 */
export type MessageJson = string & { readonly __brand: 'MessageJson' };

/**
 * The message's fields, in the order of its JSON, and what each store keeps of one outside
 * that text (to order, find or page messages without parsing it). Adding a field: here,
 * StoredMessage, messageJson and AppendedMessage's constructor, then MessageDto.
 */
export const MESSAGE_FIELDS = {
  /** Redis: the `ids` hash maps it to the message's seq (to delete it). */
  id: {},
  conversationId: {},
  sender: {},
  content: {},
  /** Memory: the record's `timestamp`; snapshot: [0] of the message; Redis: its score in `msgs`. */
  timestamp: {},
  /** Memory: the record's `seq`; snapshot: [1]; Redis: the member's 10-digit prefix, its score in `seq`. */
  seq: {},
  createdAt: {},
} as const satisfies Record<keyof StoredMessage, object>;

/**
 * What a post gives of its message (NewMessage's own fields). `now` becomes its `createdAt`.
 */
export interface MessageDraft {
  id: string;
  sender: Sender;
  content: string;
  timestamp: number;
  now: number;
}

/** The one encoder: a message as its stored text, the fields in MESSAGE_FIELDS order. */
export function messageJson(message: StoredMessage): MessageJson {
  return JSON.stringify({
    id: message.id,
    conversationId: message.conversationId,
    sender: message.sender,
    content: message.content,
    timestamp: message.timestamp,
    seq: message.seq,
    createdAt: message.createdAt,
  }) as MessageJson;
}

const SEQ_KEY = '"seq":';

/**
 * A post's MessageJson either side of its seq, for a store that assigns the seq elsewhere:
 * src/conversations/repositories/redis/scripts/append-7.lua makes `head .. seq .. tail`, as
 * messageJsonWithSeq does here. The key `"seq":` can only be the key itself: inside a JSON
 * string every quote is escaped.
 */
export function messageJsonAroundSeq(
  conversationId: string,
  draft: MessageDraft,
): [head: string, tail: string] {
  const { json } = AppendedMessage.posted(conversationId, draft, 0);
  const at = json.indexOf(SEQ_KEY) + SEQ_KEY.length;
  return [json.slice(0, at), json.slice(at + 1)];
}

/** What append-7.lua makes of the halves of messageJsonAroundSeq and the seq it assigns. */
export function messageJsonWithSeq(head: string, seq: number, tail: string): MessageJson {
  return `${head}${seq}${tail}` as MessageJson;
}

/** Text a store kept, as it kept it: made by messageJson (or append-7.lua), never changed. */
export function keptMessageJson(text: string): MessageJson {
  return text as MessageJson;
}

/**
 * How every MessageJson begins, `id` being its first field: a store finds a message by its
 * text without parsing it.
 */
export function messageJsonPrefix(messageId: string): string {
  return `{"id":${JSON.stringify(messageId)},`;
}

/**
 * A post's answer: the message as stored, its MessageJson (`json`), and `replayed` when an
 * earlier attempt with the same Idempotency-Key stored it. The text is a private field, so the
 * object's own properties are the StoredMessage's (and `replayed`): what crosses the cluster's
 * IPC channel, what JSON.stringify writes and what tests compare. A worker receives the fields
 * and makes the text again (fromFields).
 */
export class AppendedMessage implements StoredMessage {
  readonly #json: MessageJson;

  /** The fields in MESSAGE_FIELDS order: the order JSON.stringify writes them in. */
  private constructor(
    readonly id: string,
    readonly conversationId: string,
    readonly sender: Sender,
    readonly content: string,
    readonly timestamp: number,
    readonly seq: number,
    readonly createdAt: number,
    json: MessageJson | null,
    readonly replayed?: true,
  ) {
    this.#json = json ?? messageJson(this);
  }

  /** The message a post stores; its text made here unless the store made it (`json`). */
  static posted(
    conversationId: string,
    draft: MessageDraft,
    seq: number,
    json: MessageJson | null = null,
  ): AppendedMessage {
    const { id, sender, content, timestamp, now } = draft;
    return new AppendedMessage(id, conversationId, sender, content, timestamp, seq, now, json);
  }

  /** A kept message, answered again to a retry of the keyed post that stored it. */
  static replayed(json: MessageJson): AppendedMessage {
    return AppendedMessage.of(JSON.parse(json) as StoredMessage, json, true);
  }

  /** Another process's answer, as its fields crossed the IPC channel. */
  static fromFields(fields: StoredMessage & { replayed?: true }): AppendedMessage {
    return AppendedMessage.of(fields, null, fields.replayed);
  }

  private static of(m: StoredMessage, json: MessageJson | null, replayed?: true): AppendedMessage {
    const { id, conversationId, sender, content, timestamp, seq, createdAt } = m;
    return new AppendedMessage(
      id,
      conversationId,
      sender,
      content,
      timestamp,
      seq,
      createdAt,
      json,
      replayed,
    );
  }

  get json(): MessageJson {
    return this.#json;
  }
}

const SENDER_KEY = '","sender":"';
const CREATED_AT_KEY = '"createdAt":';

/**
 * The sender of a MessageJson, read without parsing it: the first `","sender":"` is the key
 * itself (inside a JSON string every quote is escaped), after the id and conversation id.
 */
export function senderOfJson(json: MessageJson): Sender {
  return json.startsWith('customer', json.indexOf(SENDER_KEY) + SENDER_KEY.length)
    ? 'customer'
    : 'agent';
}

/** The createdAt of a MessageJson, its last field, read without parsing it. */
export function createdAtOfJson(json: MessageJson): number {
  return Number(json.slice(json.lastIndexOf(CREATED_AT_KEY) + CREATED_AT_KEY.length, -1));
}
