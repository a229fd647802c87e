import { CONFIGURATIONS } from '../http/configurations';
import { installCleanup } from '../lib/children';
import { RunningServer, startServer } from '../lib/server';

/**
 * `node bench/dist/baselines/same-replies.js` (after `npm run bench` or
 * `tsc -p bench/tsconfig.json`): checks that the baselines A, N, NP, NX and X answer every route,
 * and each error the routes can give, as E does: the same status, content type, Location and
 * body (ids and times masked). X's and NX's creates also carry a customerToken, and every X
 * and NX answer a request id, Cache-Control: no-store and helmet's headers. Exits 1 on any
 * difference.
 */

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const TOKEN = /^<id>\.[A-Za-z0-9_-]{43}$/;

interface Answer {
  status: number;
  contentType: string | null;
  location: string | null;
  body: string;
  headers: Headers;
}

/** The body with ids and times masked, so that two servers' answers can be compared. */
function mask(text: string): string {
  return text.replace(UUID, '<id>').replace(/":1\d{12}\b/g, '":<time>');
}

type Step = (ask: Ask, ids: Ids) => Promise<Answer>;
type Ask = (method: string, path: string, body?: string, type?: string) => Promise<Answer>;
interface Ids {
  conversation: string;
  message: string;
}

const MISSING = '00000000-0000-4000-8000-000000000000';
const json = 'application/json';

const STEPS: [string, Step][] = [
  ['create, no body', (ask) => ask('POST', '/api/conversations')],
  ['create, {}', (ask) => ask('POST', '/api/conversations', '{}', json)],
  ['create, unknown field', (ask) => ask('POST', '/api/conversations', '{"x":1}', json)],
  ['create, an array', (ask) => ask('POST', '/api/conversations', '[1]', json)],
  ['create, malformed JSON', (ask) => ask('POST', '/api/conversations', '{', json)],
  ['create, text/plain', (ask) => ask('POST', '/api/conversations', 'hi', 'text/plain')],
  [
    'create, latin1 JSON',
    (ask) => ask('POST', '/api/conversations', '{}', 'application/json; charset=latin1'),
  ],
  [
    'create, 70 kB',
    (ask) => ask('POST', '/api/conversations', JSON.stringify({ a: 'x'.repeat(70_000) }), json),
  ],
  [
    'post',
    (ask, ids) =>
      ask(
        'POST',
        `/api/conversations/${ids.conversation}/messages`,
        '{"sender":"customer","content":"Hello","timestamp":1764201600000}',
        json,
      ),
  ],
  [
    'post, invalid',
    (ask, ids) =>
      ask(
        'POST',
        `/api/conversations/${ids.conversation}/messages`,
        '{"sender":"bot","content":" ","extra":1}',
        json,
      ),
  ],
  [
    'post, no such conversation',
    (ask) =>
      ask(
        'POST',
        `/api/conversations/${MISSING}/messages`,
        '{"sender":"agent","content":"a"}',
        json,
      ),
  ],
  [
    'post, id not a UUID',
    (ask) =>
      ask('POST', '/api/conversations/nope/messages', '{"sender":"agent","content":"a"}', json),
  ],
  ['get', (ask, ids) => ask('GET', `/api/conversations/${ids.conversation}`)],
  ['get, no such conversation', (ask) => ask('GET', `/api/conversations/${MISSING}`)],
  [
    'delete, no such message',
    (ask, ids) => ask('DELETE', `/api/conversations/${ids.conversation}/messages/${MISSING}`),
  ],
  [
    'delete',
    (ask, ids) => ask('DELETE', `/api/conversations/${ids.conversation}/messages/${ids.message}`),
  ],
  ['no such route', (ask) => ask('GET', '/api/nothing')],
];

async function answers(server: RunningServer): Promise<Map<string, Answer>> {
  const ask: Ask = async (method, path, body, type) => {
    const response = await fetch(`${server.baseUrl}${path}`, {
      method,
      body,
      headers: type ? { 'content-type': type } : {},
    });
    return {
      status: response.status,
      contentType: response.headers.get('content-type'),
      location: response.headers.get('location'),
      body: await response.text(),
      headers: response.headers,
    };
  };
  const created = await ask('POST', '/api/conversations');
  const ids: Ids = { conversation: (JSON.parse(created.body) as { id: string }).id, message: '' };
  const result = new Map<string, Answer>();
  for (const [name, step] of STEPS) {
    const answer = await step(ask, ids);
    if (name === 'post') {
      ids.message = (JSON.parse(answer.body) as { id: string }).id;
    }
    result.set(name, answer);
  }
  return result;
}

/** What differs from E's answer; X's and NX's extras are checked, then left out of it. */
function differences(key: string, name: string, answer: Answer, expected: Answer): string[] {
  const found: string[] = [];
  let body = mask(answer.body);
  if (key === 'X' || key === 'NX') {
    if (answer.status === 201 && name.startsWith('create')) {
      const parsed = JSON.parse(answer.body) as Record<string, unknown>;
      const token = parsed.customerToken;
      if (typeof token !== 'string' || !TOKEN.test(mask(token))) {
        found.push(`customerToken missing or malformed: ${String(token)}`);
      }
      delete parsed.customerToken;
      body = mask(JSON.stringify(parsed));
    }
    for (const [header, value] of [
      ['cache-control', /^no-store$/],
      ['x-request-id', UUID],
      ['x-content-type-options', /^nosniff$/],
      ['content-security-policy', /default-src 'self'/],
    ] as const) {
      if (!value.test(answer.headers.get(header) ?? '')) {
        found.push(`${header}: ${answer.headers.get(header)}`);
      }
    }
  }
  const pairs: [string, unknown, unknown][] = [
    ['status', answer.status, expected.status],
    ['content-type', answer.contentType, expected.contentType],
    [
      'location',
      answer.location && mask(answer.location),
      expected.location && mask(expected.location),
    ],
    ['body', body, mask(expected.body)],
  ];
  for (const [what, got, want] of pairs) {
    if (got !== want) {
      found.push(`${what}: ${String(got)} (E: ${String(want)})`);
    }
  }
  return found;
}

async function main(): Promise<void> {
  installCleanup();
  const keys = ['E', 'A', 'N', 'NP', 'NX', 'X'];
  const results = new Map<string, Map<string, Answer>>();
  for (const key of keys) {
    const configuration = CONFIGURATIONS.find((c) => c.key === key);
    if (!configuration) {
      throw new Error(`no configuration ${key}`);
    }
    const server = await startServer(configuration);
    try {
      results.set(key, await answers(server));
    } finally {
      await server.stop();
    }
  }
  const expected = results.get('E') as Map<string, Answer>;
  let failed = 0;
  for (const key of keys.slice(1)) {
    for (const [name, answer] of results.get(key) ?? []) {
      const wanted = expected.get(name) as Answer;
      const found = differences(key, name, answer, wanted);
      failed += found.length > 0 ? 1 : 0;
      process.stdout.write(
        `${found.length > 0 ? 'DIFF' : 'same'} ${key} ${name}: ${answer.status}${found.map((d) => `\n    ${d}`).join('')}\n`,
      );
    }
  }
  process.stdout.write(
    failed > 0 ? `${failed} answers differ from E's\n` : 'A, N, NP, NX and X answer as E does\n',
  );
  process.exitCode = failed > 0 ? 1 : 0;
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
