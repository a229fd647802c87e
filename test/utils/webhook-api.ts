import request from 'supertest';
import { asIs } from './bodies';
import { useTestApp } from './create-app';
import { BACKEND_KEY, bearer } from './credentials';
import { expectProblem, expectProblemCode, expectProblemDetail, FieldError } from './problem';
import { eventually, Received, WebhookReceiver } from './webhook-receiver';
import { FAST_WEBHOOKS } from './webhook-server';

/*
 * What the webhook route suites (test/routes/*-webhooks-*.e2e-spec.ts) share: an app with API
 * keys whose deliveries reach receivers on 127.0.0.1 on a schedule of milliseconds, the
 * endpoint's exact view, and the checks every route makes the same way (ids, access, bodies).
 */

/** API keys, receivers on 127.0.0.1 allowed, retries in milliseconds: the built servers' too. */
export { FAST_WEBHOOKS };

/** An id of the right form that no endpoint has. */
export const UNKNOWN_WEBHOOK_ID = `ep_${'0'.repeat(32)}`;

/** Ids no endpoint can have: answered as unknown ones, never as a validation error. */
export const MALFORMED_WEBHOOK_IDS = [
  'not-an-id',
  'ep_123',
  `EP_${'a'.repeat(32)}`,
  `ep_${'g'.repeat(32)}`,
  `ep_${'a'.repeat(33)}`,
  '00000000-0000-4000-8000-000000000000',
];

export const EVENT_PATTERNS =
  'conversation.created, message.created, message.deleted, conversation.read, ' +
  'conversation.updated, conversation.evicted, conversation.transcript, webhook.test, ' +
  'conversation.*, message.*, *';

export const PRIVATE_REFUSAL =
  'url must not point at a loopback, private or link-local address (WEBHOOK_ALLOW_PRIVATE_NETWORKS allows it)';
export const METADATA_REFUSAL = 'url must not point at a cloud metadata address';

/** A bad body's name, the body, and the field errors it gets. */
export type BadBody = [string, unknown, FieldError[]];

const EVENTS_MESSAGE = (i: number) => `events[${i}] must be one of ${EVENT_PATTERNS}`;

/**
 * The bad values of the fields POST /api/webhooks and PATCH /api/webhooks/{id} share (one
 * validation serves both), each in a body that is otherwise `base` (POST's needs a url).
 */
export function sharedBadBodies(base: Record<string, unknown>): BadBody[] {
  const cases: [string, Record<string, unknown>, FieldError[]][] = [
    ['a url that is a number', { url: 42 }, [{ field: 'url', message: 'url must be a string' }]],
    ['a url that is null', { url: null }, [{ field: 'url', message: 'url must be a string' }]],
    [
      'a relative url',
      { url: '/hook' },
      [{ field: 'url', message: 'url must be an absolute http or https URL' }],
    ],
    [
      'an empty url',
      { url: '' },
      [{ field: 'url', message: 'url must be an absolute http or https URL' }],
    ],
    [
      'an ftp: url',
      { url: 'ftp://example.com/hook' },
      [{ field: 'url', message: 'url must be an http or https URL' }],
    ],
    [
      'a javascript: url',
      { url: 'javascript:alert(1)' },
      [{ field: 'url', message: 'url must be an http or https URL' }],
    ],
    [
      'a url with credentials',
      { url: 'https://user:pass@example.com/hook' },
      [{ field: 'url', message: 'url must not hold credentials (user:password@)' }],
    ],
    [
      'a url with a user only',
      { url: 'https://user@example.com/hook' },
      [{ field: 'url', message: 'url must not hold credentials (user:password@)' }],
    ],
    [
      'a url of 2049 characters',
      { url: `https://example.com/${'a'.repeat(2049 - 'https://example.com/'.length)}` },
      [{ field: 'url', message: 'url must be at most 2048 characters' }],
    ],
    [
      'the cloud metadata address (refused even with private networks allowed)',
      { url: 'http://169.254.169.254/latest/meta-data' },
      [{ field: 'url', message: METADATA_REFUSAL }],
    ],
    [
      'the metadata address IPv4-mapped',
      { url: 'http://[::ffff:169.254.169.254]/' },
      [{ field: 'url', message: METADATA_REFUSAL }],
    ],
    [
      'an unspecified address',
      { url: 'http://0.0.0.0/hook' },
      [
        {
          field: 'url',
          message: 'url must not point at an unroutable, multicast or reserved address',
        },
      ],
    ],
    [
      'events that is not an array',
      { events: 'message.created' },
      [{ field: 'events', message: 'events must be an array of event types' }],
    ],
    [
      'events that is an object',
      { events: { 0: 'message.created' } },
      [{ field: 'events', message: 'events must be an array of event types' }],
    ],
    [
      'events that is null',
      { events: null },
      [{ field: 'events', message: 'events must be an array of event types' }],
    ],
    [
      'an unknown event type',
      { events: ['message.created', 'message.edited'] },
      [{ field: 'events[1]', message: EVENTS_MESSAGE(1) }],
    ],
    [
      'event entries that are not strings',
      { events: [7, 'message.*', null, ['message.created']] },
      [
        { field: 'events[0]', message: EVENTS_MESSAGE(0) },
        { field: 'events[2]', message: EVENTS_MESSAGE(2) },
        { field: 'events[3]', message: EVENTS_MESSAGE(3) },
      ],
    ],
    [
      'typing (not sent)',
      { events: ['typing'] },
      [{ field: 'events[0]', message: EVENTS_MESSAGE(0) }],
    ],
    [
      'more than 20 events',
      { events: Array(21).fill('*') as string[] },
      [{ field: 'events', message: 'events must list at most 20 entries' }],
    ],
    [
      'a description of 501 characters',
      { description: 'd'.repeat(501) },
      [{ field: 'description', message: 'description must be at most 500 characters' }],
    ],
    [
      'a description that is a number',
      { description: 5 },
      [{ field: 'description', message: 'description must be a string' }],
    ],
    [
      'a description that is null',
      { description: null },
      [{ field: 'description', message: 'description must be a string' }],
    ],
    [
      'an unknown field',
      { secret: 'whsec_mine' },
      [{ field: 'secret', message: 'property secret should not exist' }],
    ],
    [
      'a read-only field',
      { status: 'disabled' },
      [{ field: 'status', message: 'property status should not exist' }],
    ],
  ];
  return cases.map(([name, fields, errors]) => [name, { ...base, ...fields }, errors]);
}

/** An endpoint as the API shows it (EndpointView). */
export interface Endpoint {
  id: string;
  url: string;
  events: string[];
  description: string;
  status: 'enabled' | 'disabled';
  disabledReason: string | null;
  createdAt: number;
  updatedAt: number;
  lastSuccessAt: number | null;
  failingSince: number | null;
  previousSecretsExpireAt: number[];
}

export interface Delivery {
  id: string;
  type: string;
  status: 'pending' | 'succeeded' | 'failed';
  createdAt: number;
  nextAttemptAt: number | null;
  attempts: {
    at: number;
    statusCode: number | null;
    durationMs: number;
    error: string | null;
  }[];
}

export const ENDPOINT_ID = /^ep_[0-9a-f]{32}$/;
export const SECRET = /^whsec_[A-Za-z0-9+/]+={0,2}$/;

/** The exact view of a new endpoint: `fields` over the defaults, any times. */
export function newEndpointView(fields: Partial<Endpoint>): Endpoint {
  const time = expect.any(Number) as unknown as number;
  return {
    id: expect.stringMatching(ENDPOINT_ID) as unknown as string,
    url: 'https://example.com/hook',
    events: [],
    description: '',
    status: 'enabled',
    disabledReason: null,
    createdAt: time,
    updatedAt: time,
    lastSuccessAt: null,
    failingSince: null,
    previousSecretsExpireAt: [],
    ...fields,
  };
}

/**
 * The app with `env` over FAST_WEBHOOKS for the enclosing describe, the backend's key, and
 * receivers stopped after it. Every endpoint is deleted after each test, so tests do not meet
 * each other's endpoints or the endpoint limit.
 */
export function useWebhookApp(env: Record<string, string> = {}) {
  const app = useTestApp({ env: { ...FAST_WEBHOOKS, ...env } });
  const http = () => request(app().getHttpServer());
  const key = bearer(BACKEND_KEY);
  const receivers: WebhookReceiver[] = [];

  afterEach(async () => {
    const res = await http().get('/api/webhooks').set(key);
    for (const endpoint of (res.body as { webhooks?: Endpoint[] }).webhooks ?? []) {
      await http().delete(`/api/webhooks/${endpoint.id}`).set(key);
    }
  });
  afterAll(async () => {
    await Promise.all(receivers.map((r) => r.stop()));
  });

  /** A receiver on 127.0.0.1 that answers 204 unless told otherwise. */
  async function receiver(): Promise<WebhookReceiver> {
    const r = await WebhookReceiver.start();
    receivers.push(r);
    return r;
  }

  /** Adds an endpoint (201 expected); its view and secret. */
  async function create(
    body: { url?: string; events?: string[]; description?: string } = {},
  ): Promise<Endpoint & { secret: string }> {
    const res = await http()
      .post('/api/webhooks')
      .set(key)
      .send({ url: 'https://example.com/hook', ...body });
    expect(res.status).toBe(201);
    return res.body as Endpoint & { secret: string };
  }

  /** The endpoint's view, which must be 200. */
  async function read(id: string): Promise<Endpoint> {
    const res = await http().get(`/api/webhooks/${id}`).set(key);
    expect(res.status).toBe(200);
    return res.body as Endpoint;
  }

  /** The log's first page (200 expected) for a query string (without `?`). */
  async function deliveries(id: string, query = ''): Promise<Delivery[]> {
    const res = await http()
      .get(`/api/webhooks/${id}/deliveries${query ? `?${query}` : ''}`)
      .set(key);
    expect(res.status).toBe(200);
    return (res.body as { deliveries: Delivery[] }).deliveries;
  }

  /** Polls the log until the delivery `deliveryId` has `status`; returns it. */
  function settled(id: string, deliveryId: string, status: Delivery['status']) {
    return eventually(
      async () =>
        (await deliveries(id)).find((d) => d.id === deliveryId && d.status === status) ?? null,
      5_000,
      `delivery ${deliveryId} ${status}`,
    ) as Promise<Delivery>;
  }

  /** A delivery that failed every attempt (its receiver answers 500): its id. */
  async function failedDelivery(r: WebhookReceiver, endpointId: string): Promise<string> {
    r.answer = () => ({ status: 500 });
    const sent = await http().post(`/api/webhooks/${endpointId}/test`).set(key);
    expect(sent.status).toBe(202);
    const { deliveryId } = sent.body as { deliveryId: string };
    await settled(endpointId, deliveryId, 'failed');
    return deliveryId;
  }

  /** A customer token: a conversation's, made with the key. */
  async function customerToken(): Promise<string> {
    const res = await http().post('/api/conversations').set(key);
    expect(res.status).toBe(201);
    return (res.body as { customerToken: string }).customerToken;
  }

  return {
    app,
    http,
    key,
    receiver,
    create,
    read,
    deliveries,
    settled,
    failedDelivery,
    customerToken,
  };
}

/** Asserts a 400 validation_failed naming these fields. */
export function expectInvalid(res: request.Response, errors: FieldError[]): void {
  expectProblem(res, 400, 'validation_failed', errors);
}

/**
 * The body reader's refusals, as every route with a body answers them: malformed JSON, a body
 * that is not JSON, JSON in another charset. `route` makes the request with its credential;
 * `unchanged` checks afterwards that nothing was done.
 */
export function itRefusesUnreadableBodies(
  route: () => request.Test,
  unchanged: () => Promise<void> = async () => {},
): void {
  it.each(['{"url":', "{'url':'x'}", '{"a":1,}', 'url=x'])(
    '400 malformed_json for %j; no parser details leak',
    async (raw) => {
      const res = await route().set('Content-Type', 'application/json').send(raw);
      expectProblem(res, 400, 'malformed_json');
      expect(res.text).not.toMatch(/SyntaxError|Unexpected|at .*\.js|body-parser|express/i);
      await unchanged();
    },
  );

  it.each([
    ['text/plain', 'hello'],
    ['application/x-www-form-urlencoded', 'url=https%3A%2F%2Fexample.com'],
    ['application/xml', '<webhook/>'],
  ])('415 unsupported_media_type for a %s body', async (type, raw) => {
    expectProblem(await route().set('Content-Type', type).send(raw), 415, 'unsupported_media_type');
    await unchanged();
  });

  it.each([
    ['utf-16le', Buffer.from('{}', 'utf16le')],
    ['iso-8859-1', Buffer.from('{}', 'latin1')],
  ])('415 unsupported_media_type for JSON in charset=%s', async (charset, raw) => {
    const res = await route()
      .set('Content-Type', `application/json; charset=${charset}`)
      .serialize(asIs)
      .send(raw);
    expectProblemDetail(
      res as unknown as { status: number; headers: Record<string, string>; body: unknown },
      415,
      'unsupported_media_type',
      'The body must be JSON encoded as UTF-8.',
    );
    await unchanged();
  });
}

/**
 * The access rules every webhook route shares: with API_KEYS, a customer token gets 403
 * forbidden and no credential (or a wrong one) 401 unauthorized. `send` makes the request with
 * the headers given (an endpoint it needs may be made first).
 */
export function itTakesAnApiKeyOnly(
  customerToken: () => Promise<string>,
  send: (headers: Record<string, string>) => Promise<request.Response>,
  unchanged: () => Promise<void> = async () => {},
): void {
  it('a customer token: 403 forbidden, and nothing changed', async () => {
    const token = await customerToken();
    expectProblem(await send(bearer(token)), 403, 'forbidden');
    await unchanged();
  });

  it('no credential, or a wrong one: 401 unauthorized, and nothing changed', async () => {
    expectProblemCode(await send({}), 401, 'unauthorized');
    expectProblemCode(await send(bearer('not-a-key')), 401, 'unauthorized');
    await unchanged();
  });
}

/** Without API_KEYS: 403 api_keys_required, whatever the id or body. */
export type Http = () => ReturnType<typeof request>;

export function itRefusesOpenMode(route: (http: Http) => request.Test): void {
  describe('open mode (no API_KEYS)', () => {
    const app = useTestApp({ env: { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' } });
    it('403 api_keys_required', async () => {
      const res = await route(() => request(app().getHttpServer()));
      expectProblem(res, 403, 'api_keys_required');
    });
  });
}

export type { Received };
export { eventually };
