import { initialState } from './conversation-state';
import {
  asCreated,
  CONVERSATION_FIELDS,
  conversationFromSnapshot,
  customerTokenFromRedis,
  customerTokenOf,
  headerFromRedis,
  cutToCodePoints,
  historyOf,
  LAST_MESSAGE_CHARS,
  lastMessageOf,
  newConversation,
  REDIS_HEADER_FIELDS,
  REDIS_TOKEN_FIELDS,
  redisHashOf,
  SnapshotLine,
  snapshotLineOf,
  StoredConversation,
} from './conversation.codec';
import { MessageJson } from './message.codec';

/** A record whose every field differs from its default and from the others. */
const RECORD: StoredConversation = {
  id: 'c1',
  createdAt: 1_000,
  lastActivityAt: 2_000,
  lastSeq: 7,
  readCustomer: 3,
  readAgent: 5,
  tokenHash: 'hash',
  tokenAnonymous: false,
  createKey: 'fingerprint',
  life: 42,
  status: 'snoozed',
  snoozedUntil: 9_000,
  assignee: 'agent:7',
  team: 'billing',
  customer: { externalId: 'x1', name: 'Ann "A"', email: 'a@example.com' },
  metadata: { plan: 'pro', seats: 3, trial: false },
  stateSeq: 6,
  unreadCustomer: 2,
  unreadAgent: 1,
  waitingSince: 1_500,
};

/** The record as it was before the inbox: open, unassigned, no customer, counters 0. */
const BEFORE_INBOX = {
  status: 'open',
  snoozedUntil: 0,
  assignee: '',
  team: '',
  customer: {},
  metadata: {},
  stateSeq: 0,
  unreadCustomer: 0,
  unreadAgent: 0,
  waitingSince: 0,
} as const;

/** The conversation hash as Redis keeps it, from HSET's arguments; HMGET on it. */
function hashOf(fieldsAndValues: (string | number)[]): Map<string, string> {
  const hash = new Map<string, string>();
  for (let i = 0; i < fieldsAndValues.length; i += 2) {
    hash.set(String(fieldsAndValues[i]), String(fieldsAndValues[i + 1]));
  }
  return hash;
}
const hmget = (hash: Map<string, string>, fields: string[]) =>
  fields.map((field) => hash.get(field) ?? null);

describe('the conversation record codec', () => {
  it('names a distinct hash field for each field Redis keeps', () => {
    const letters = Object.values(CONVERSATION_FIELDS)
      .map((forms) => forms.redis)
      .filter((letter) => letter !== null);
    expect(new Set(letters).size).toBe(letters.length);
  });

  it('reads back every field from a snapshot line', () => {
    const messages: SnapshotLine['messages'] = [[1, 1, '{}' as MessageJson]];
    const line = JSON.parse(
      JSON.stringify(snapshotLineOf(RECORD, messages, [['k', 'f', 9, '{}' as MessageJson]])),
    ) as SnapshotLine;
    // The counters are counted again from the messages by the store that restores it.
    expect(conversationFromSnapshot(line)).toEqual({
      ...RECORD,
      unreadCustomer: 0,
      unreadAgent: 0,
      waitingSince: 0,
    });
    for (const forms of Object.values(CONVERSATION_FIELDS)) {
      if (forms.snapshot !== null) {
        expect(line).toHaveProperty(forms.snapshot);
      }
    }
  });

  it('reads a snapshot line from before tokens, marks, read receipts, keys, lives and the inbox with defaults', () => {
    const line: SnapshotLine = {
      id: 'c1',
      createdAt: 1_000,
      lastActivityAt: 2_000,
      lastSeq: 7,
      messages: [],
    };
    const { life, ...restored } = conversationFromSnapshot(line);
    expect(restored).toEqual({
      ...RECORD,
      ...BEFORE_INBOX,
      readCustomer: 0,
      readAgent: 0,
      tokenHash: '',
      tokenAnonymous: true,
      createKey: '',
      life: undefined,
      ...initialState(),
      unreadCustomer: 0,
      unreadAgent: 0,
      waitingSince: 0,
    });
    // No life kept: one is drawn, as a create draws one.
    expect(Number.isSafeInteger(life) && life >= 0 && life < 2 ** 47).toBe(true);
  });

  it('answers from the Redis hash what it answers from the record', () => {
    const hash = hashOf(redisHashOf(RECORD, 4));
    // The horizons move after the create, by read-5.lua.
    hash.set(CONVERSATION_FIELDS.readCustomer.redis, String(RECORD.readCustomer));
    hash.set(CONVERSATION_FIELDS.readAgent.redis, String(RECORD.readAgent));
    expect(headerFromRedis('c1', hmget(hash, REDIS_HEADER_FIELDS), null)).toEqual(
      historyOf(RECORD, 4, null),
    );
    expect(customerTokenFromRedis(hmget(hash, REDIS_TOKEN_FIELDS))).toEqual(
      customerTokenOf(RECORD),
    );
    expect(headerFromRedis('c1', hmget(new Map(), REDIS_HEADER_FIELDS), null)).toBeNull();
  });

  it('cuts the last message to LAST_MESSAGE_CHARS code points, never half a pair', () => {
    const long = '😀'.repeat(150) + 'a'.repeat(100);
    const json = JSON.stringify({ id: 'm', sender: 'customer', content: long, seq: 4 });
    const cut = lastMessageOf(json);
    expect(cut).toEqual({ sender: 'customer', seq: 4, content: '😀'.repeat(150) + 'a'.repeat(50) });
    expect([...cut.content]).toHaveLength(LAST_MESSAGE_CHARS);
    expect(cutToCodePoints('short')).toBe('short');
  });

  it('writes a new record to Redis as the build before the codec did, and reads old hashes', () => {
    const made = newConversation(
      {
        id: 'c1',
        now: 1_000,
        customerToken: { hash: 'hash', anonymous: true },
        idempotency: { fingerprint: 'f' },
      },
      42,
    );
    expect(redisHashOf(made, 0)).toEqual([
      'c',
      1_000,
      'a',
      1_000,
      's',
      0,
      'n',
      0,
      't',
      'hash',
      'tm',
      'a',
      'k',
      'f',
      'l',
      42,
      'st',
      'open',
      'as',
      '',
      'te',
      '',
      'cu',
      '{}',
      'md',
      '{}',
      'ss',
      0,
      'uc',
      0,
      'ua',
      0,
      'ws',
      0,
      'ic',
      1,
    ]);
    // Without rc, ra, l or tm (records from before read receipts, lives and the mark).
    const old = new Map(Object.entries({ c: '1000', a: '2000', s: '7', n: '4', t: 'hash' }));
    expect(headerFromRedis('c1', hmget(old, REDIS_HEADER_FIELDS), [])).toEqual({
      ...historyOf({ ...RECORD, ...BEFORE_INBOX, readCustomer: 0, readAgent: 0, life: 0 }, 4, []),
    });
    expect(customerTokenFromRedis(hmget(old, REDIS_TOKEN_FIELDS))).toEqual({
      hash: 'hash',
      anonymous: true,
    });
    expect(asCreated(made)).toEqual({
      id: 'c1',
      createdAt: 1_000,
      lastActivityAt: 1_000,
      messageCount: 0,
    });
  });
});
