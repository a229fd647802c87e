import http from 'node:http';

/**
 * Fills a fresh server with an inbox over its own API, as agents and customers would: every
 * conversation created with a customer, a first customer message, for some an agent's reply
 * and the agent's read, and then its state (status, assignee, team) by PATCH. The mix is
 * drawn from a fixed seed, so every start of every configuration gets the same one.
 */

export const AGENTS = 50;
export const TEAMS = ['billing', 'shipping', 'returns', 'sales', 'tech'];
/** Requests in flight while seeding. */
const IN_FLIGHT = 32;
/** How far ahead a snoozed conversation sleeps: past the run, within SNOOZE_MAX_MS (30 days). */
const SNOOZE_MS = 7 * 24 * 3600_000;

/** The share of each: what an inbox of a busy support team looks like. */
export const MIX = {
  status: { open: 0.7, pending: 0.12, snoozed: 0.08, resolved: 0.1 },
  /** Given to one of AGENTS agents; the rest unassigned. */
  assigned: 0.7,
  /** In one of TEAMS; the rest in none. */
  inTeam: 0.9,
  /** The agent has replied to the customer's first message (else the customer waits). */
  replied: 0.55,
  /** The agent has read the customer's message (else it counts in unread.agent). */
  read: 0.5,
};

export interface SeededInbox {
  conversations: number;
  /** Requests sent, and how long seeding took. */
  requests: number;
  seconds: number;
  /** `GET /api/conversations/counts` once seeded. */
  counts: Record<string, number>;
  /** Conversations by what the queries select, as seeded. */
  waiting: number;
  unreadAgent: number;
  openUnassignedWaiting: number;
}

export const agentId = (n: number): string => `agent-${n % AGENTS}`;

/** Mulberry32: a small seeded generator, the same draws on every start. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Plan {
  status: keyof typeof MIX.status;
  assignee: string | null;
  team: string | null;
  replied: boolean;
  read: boolean;
}

function plans(count: number): Plan[] {
  const random = generator(32);
  const statuses = Object.entries(MIX.status) as [Plan['status'], number][];
  return Array.from({ length: count }, () => {
    let draw = random();
    let status: Plan['status'] = 'open';
    for (const [name, share] of statuses) {
      if (draw < share) {
        status = name;
        break;
      }
      draw -= share;
    }
    return {
      status,
      assignee: random() < MIX.assigned ? agentId(Math.floor(random() * AGENTS)) : null,
      team: random() < MIX.inTeam ? TEAMS[Math.floor(random() * TEAMS.length)] : null,
      replied: random() < MIX.replied,
      read: random() < MIX.read,
    };
  });
}

interface Call {
  method: string;
  path: string;
  body?: unknown;
}

/** A keep-alive client for one server: JSON in, JSON out, any status but 2xx thrown. */
export class JsonClient {
  private readonly agent: http.Agent;

  constructor(
    private readonly baseUrl: string,
    sockets: number,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  }

  /** Sends one request; resolves with its status and body text. */
  send(call: Call): Promise<{ status: number; text: string }> {
    const body = call.body === undefined ? undefined : JSON.stringify(call.body);
    return new Promise((resolve, reject) => {
      const request = http.request(
        `${this.baseUrl}${call.path}`,
        {
          method: call.method,
          agent: this.agent,
          headers: body
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
            : {},
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString() }),
          );
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  }

  async json<T>(call: Call): Promise<T> {
    const { status, text } = await this.send(call);
    if (status < 200 || status > 299) {
      throw new Error(`${call.method} ${call.path}: ${status} ${text.slice(0, 300)}`);
    }
    return JSON.parse(text) as T;
  }

  /** Sends every call, IN_FLIGHT at a time; the answers in the calls' order. */
  async all<T>(calls: Call[]): Promise<T[]> {
    const answers = new Array<T>(calls.length);
    let next = 0;
    const lane = async () => {
      while (next < calls.length) {
        const index = next++;
        answers[index] = await this.json<T>(calls[index]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, calls.length) }, lane));
    return answers;
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * Seeds `count` conversations in five passes (each after the one before, since a message
 * needs its conversation and the state comes last: a customer message would reopen a
 * snoozed or resolved one).
 */
export async function seedInbox(
  baseUrl: string,
  count: number,
  log: (line: string) => void,
): Promise<SeededInbox> {
  const started = performance.now();
  const client = new JsonClient(baseUrl, IN_FLIGHT);
  try {
    const plan = plans(count);
    const created = await client.all<{ id: string }>(
      plan.map((_, i) => ({
        method: 'POST',
        path: '/api/conversations',
        body: { customer: { externalId: `customer-${i}`, name: `Customer ${i}` } },
      })),
    );
    const ids = created.map((conversation) => conversation.id);
    const base = `/api/conversations/`;
    let requests = ids.length;
    const pass = async (calls: Call[], what: string) => {
      await client.all(calls);
      requests += calls.length;
      log(`  seeded ${calls.length.toLocaleString('en')} ${what}`);
    };
    log(`  seeded ${ids.length.toLocaleString('en')} conversations`);
    await pass(
      ids.map((id, i) => ({
        method: 'POST',
        path: `${base}${id}/messages`,
        body: {
          sender: 'customer',
          content: `Hello, order #${i} has not arrived yet. Can you help?`,
        },
      })),
      'customer messages',
    );
    await pass(
      ids
        .filter((_, i) => plan[i].replied)
        .map((id) => ({
          method: 'POST',
          path: `${base}${id}/messages`,
          body: { sender: 'agent', content: 'Sorry to hear that, let me look into it for you.' },
        })),
      'agent replies',
    );
    await pass(
      ids
        .filter((_, i) => plan[i].read)
        .map((id) => ({
          method: 'POST',
          path: `${base}${id}/read`,
          body: { sender: 'agent', seq: 1 },
        })),
      'agent reads',
    );
    const now = Date.now();
    await pass(
      ids.flatMap((id, i) => {
        const { status, assignee, team } = plan[i];
        if (status === 'open' && assignee === null && team === null) {
          return [];
        }
        return [
          {
            method: 'PATCH',
            path: `${base}${id}`,
            body: {
              ...(status !== 'open' ? { status } : {}),
              ...(status === 'snoozed' ? { snoozedUntil: now + SNOOZE_MS } : {}),
              ...(assignee !== null ? { assignee } : {}),
              ...(team !== null ? { team } : {}),
            },
          },
        ];
      }),
      'state patches',
    );
    const counts = await client.json<Record<string, number>>({
      method: 'GET',
      path: `${base}counts`,
    });
    return {
      conversations: count,
      requests,
      seconds: (performance.now() - started) / 1000,
      counts,
      waiting: plan.filter((p) => !p.replied).length,
      unreadAgent: plan.filter((p) => !p.read).length,
      openUnassignedWaiting: plan.filter((p) => !p.replied && p.status === 'open' && !p.assignee)
        .length,
    };
  } finally {
    client.close();
  }
}
