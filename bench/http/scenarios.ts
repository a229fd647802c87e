import autocannon from 'autocannon';
import { fire } from '../lib/load';

/** Seeded over HTTP before every measurement. */
export const SEED = {
  conversations: 1_000,
  /** The first 20 conversations get 20 messages each (the "20-message GET" and mixed reads). */
  smallHistories: 20,
  smallHistoryLength: 20,
  /** The last conversation gets 1,000 messages (the "1,000-message GET"). */
  largeHistoryLength: 1_000,
};

export const TEXT_LENGTH = 100;

export interface SeedNeeds {
  smallHistories: boolean;
  largeHistory: boolean;
}

export interface Seeded {
  /** Every seeded conversation. */
  conversations: string[];
  /** Conversations holding 20 messages. */
  small: string[];
  /** The conversation holding 1,000 messages. */
  large: string;
  /** Conversations without seeded history (posts in the mixed scenario go there). */
  plain: string[];
}

export interface Scenario {
  key: string;
  title: string;
  seed: SeedNeeds;
  /** Part of `--quick`. */
  quick: boolean;
  /** Also measure latency at a fixed rate of half the measured maximum. */
  fixedRate: boolean;
  requests(seeded: Seeded): autocannon.Request[];
}

const FILLER =
  ' Hello, my order has not arrived yet and the tracking page shows no update since Monday, can you help?';

/** A distinct 100-character ASCII text. */
export function text(n: number): string {
  return `#${n}${FILLER}`.slice(0, TEXT_LENGTH).padEnd(TEXT_LENGTH, '.');
}

const BODIES = Array.from({ length: 64 }, (_, i) =>
  JSON.stringify({ sender: i % 2 === 0 ? 'customer' : 'agent', content: text(i) }),
);

function rotating<T>(items: readonly T[]): () => T {
  let next = 0;
  return () => items[next++ % items.length];
}

const JSON_HEADERS = { 'content-type': 'application/json' };

function createConversation(): autocannon.Request {
  return { method: 'POST', path: '/api/conversations' };
}

/** Posts a 100-character message, rotating through `ids`. */
function postMessage(ids: string[]): autocannon.Request {
  const nextId = rotating(ids);
  const nextBody = rotating(BODIES);
  return {
    method: 'POST',
    headers: JSON_HEADERS,
    setupRequest: (request) => ({
      ...request,
      path: `/api/conversations/${nextId()}/messages`,
      body: nextBody(),
    }),
  };
}

function getConversation(ids: string[]): autocannon.Request {
  const nextId = rotating(ids);
  return {
    method: 'GET',
    setupRequest: (request) => ({ ...request, path: `/api/conversations/${nextId()}` }),
  };
}

/** One cycle of 20 requests: 16 reads (80%), 3 posts (15%), 1 create (5%), interleaved. */
function mixed(seeded: Seeded): autocannon.Request[] {
  const read = getConversation(seeded.small);
  const post = postMessage(seeded.plain);
  const create = createConversation();
  return Array.from({ length: 20 }, (_, i) => {
    if (i === 10) {
      return create;
    }
    return i === 3 || i === 9 || i === 16 ? post : read;
  });
}

/**
 * Where the server is held against its baselines N and X, and L against C (issue 19's
 * targets). N, X and L run in these only: get1000 and mixed would lengthen a full run by
 * minutes for figures no target reads.
 */
export const BASELINE_SCENARIOS = ['post', 'create', 'get20'];

export const SCENARIOS: Scenario[] = [
  {
    key: 'create',
    title: 'create conversation',
    seed: { smallHistories: false, largeHistory: false },
    quick: true,
    fixedRate: false,
    requests: () => [createConversation()],
  },
  {
    key: 'post',
    title: 'post message (over 1,000 conversations)',
    seed: { smallHistories: false, largeHistory: false },
    quick: true,
    fixedRate: false,
    requests: (seeded) => [postMessage(seeded.conversations)],
  },
  {
    key: 'get20',
    title: 'GET 20-message history',
    seed: { smallHistories: true, largeHistory: false },
    quick: true,
    fixedRate: false,
    requests: (seeded) => [getConversation(seeded.small)],
  },
  {
    key: 'get1000',
    title: 'GET 1,000-message history',
    seed: { smallHistories: false, largeHistory: true },
    quick: true,
    fixedRate: false,
    requests: (seeded) => [getConversation([seeded.large])],
  },
  {
    key: 'mixed',
    title: 'mixed 80% GET / 15% post / 5% create',
    seed: { smallHistories: true, largeHistory: false },
    quick: true,
    fixedRate: true,
    requests: mixed,
  },
];

/** Creates the 1,000 conversations and the histories the scenario reads, over HTTP. */
export async function seed(baseUrl: string, needs: SeedNeeds): Promise<Seeded> {
  const conversations: string[] = [];
  await fire(baseUrl, SEED.conversations, {
    ...createConversation(),
    onResponse: (_status, body) => conversations.push((JSON.parse(body) as { id: string }).id),
  });
  const small = conversations.slice(0, SEED.smallHistories);
  const large = conversations[conversations.length - 1];
  const targets: string[] = [];
  if (needs.smallHistories) {
    for (let i = 0; i < SEED.smallHistoryLength; i++) {
      targets.push(...small);
    }
  }
  if (needs.largeHistory) {
    targets.push(...new Array<string>(SEED.largeHistoryLength).fill(large));
  }
  await fire(baseUrl, targets.length, postMessage(targets));
  return { conversations, small, large, plain: conversations.slice(SEED.smallHistories, -1) };
}
