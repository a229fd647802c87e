import { expectProblem } from '../utils/problem';
import {
  BadBody,
  Endpoint,
  EVENT_PATTERNS,
  eventually,
  expectInvalid,
  itRefusesOpenMode,
  itRefusesUnreadableBodies,
  itTakesAnApiKeyOnly,
  METADATA_REFUSAL,
  newEndpointView,
  PRIVATE_REFUSAL,
  sharedBadBodies,
  SECRET,
  useWebhookApp,
} from '../utils/webhook-api';

// The URL rules on PATCH: patch-webhooks-webhook-id.e2e-spec.ts. Deliveries to a new
// endpoint: test/webhooks.e2e-spec.ts.
describe('POST /api/webhooks', () => {
  describe('API_KEYS set, WEBHOOK_ALLOW_PRIVATE_NETWORKS=true', () => {
    const { http, key, customerToken, receiver } = useWebhookApp();
    const post = (body: unknown) =>
      http()
        .post('/api/webhooks')
        .set(key)
        .send(body as object);
    const count = async () =>
      ((await http().get('/api/webhooks').set(key)).body as { webhooks: Endpoint[] }).webhooks
        .length;
    const none = async () => expect(await count()).toBe(0);

    it('201 with the endpoint, its secret, and Location', async () => {
      const before = Date.now();
      const res = await post({
        url: 'https://example.com/hook?source=chat',
        events: ['message.created', 'conversation.*'],
        description: 'CRM sync',
      });

      expect(res.status).toBe(201);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const body = res.body as Endpoint & { secret: string };
      expect(body).toEqual({
        ...newEndpointView({
          url: 'https://example.com/hook?source=chat',
          events: ['message.created', 'conversation.*'],
          description: 'CRM sync',
        }),
        secret: expect.stringMatching(SECRET) as unknown,
      });
      expect(body.createdAt).toBeGreaterThanOrEqual(before);
      expect(body.createdAt).toBeLessThanOrEqual(Date.now());
      expect(body.updatedAt).toBe(body.createdAt);
      expect(res.headers.location).toBe(`/api/webhooks/${body.id}`);
      // The secret is shown here only.
      const read = await http()
        .get(res.headers.location as string)
        .set(key);
      expect(read.status).toBe(200);
      expect(read.body).toEqual({ ...body, secret: undefined });
      expect(read.body).not.toHaveProperty('secret');
    });

    it('only url: every event, no description; each endpoint its own id and secret', async () => {
      const a = await post({ url: 'http://example.com/a' });
      const b = await post({ url: 'http://example.com/a' });
      expect(a.status).toBe(201);
      expect(b.status).toBe(201);
      expect(a.body).toEqual({
        ...newEndpointView({ url: 'http://example.com/a' }),
        secret: expect.stringMatching(SECRET) as unknown,
      });
      const [x, y] = [a.body, b.body] as (Endpoint & { secret: string })[];
      expect(x.id).not.toBe(y.id);
      expect(x.secret).not.toBe(y.secret);
    });

    it('an empty events list takes every event, as no list does', async () => {
      const res = await post({ url: 'https://example.com/hook', events: [] });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ events: [] });
    });

    it.each([
      'http://127.0.0.1:8080/hook',
      'http://[::1]/hook',
      'http://10.1.2.3/hook',
      'http://localhost:3000/hook',
      `https://example.com/${'a'.repeat(2048 - 'https://example.com/'.length)}`,
    ])('takes %s (private networks allowed; 2048 characters)', async (url) => {
      expect((await post({ url })).status).toBe(201);
    });

    it('the new endpoint is sent what happens after its 201', async () => {
      const r = await receiver();
      const res = await post({ url: r.url, events: ['conversation.created'] });
      expect(res.status).toBe(201);
      const { secret } = res.body as { secret: string };
      await http().post('/api/conversations').set(key);
      await eventually(() => r.received.length === 1, 5_000, 'the delivery');
      expect(r.received[0].event.type).toBe('conversation.created');
      expect(r.verifiedWith(r.received[0], secret)).toBe(true);
    });

    describe('bad input: 400 validation_failed naming the field, and no endpoint', () => {
      const cases: BadBody[] = [
        ['no url', {}, [{ field: 'url', message: 'url must be a string' }]],
        ...sharedBadBodies({ url: 'https://example.com/hook' }),
        [
          'a bad url and a bad event at once',
          { url: 'ftp://example.com', events: ['nope'] },
          [
            { field: 'url', message: 'url must be an http or https URL' },
            { field: 'events[0]', message: `events[0] must be one of ${EVENT_PATTERNS}` },
          ],
        ],
        [
          'enabled (a PATCH field)',
          { url: 'https://example.com/hook', enabled: false },
          [{ field: 'enabled', message: 'property enabled should not exist' }],
        ],
      ];

      it.each(cases)('%s', async (_name, body, errors) => {
        expectInvalid(await post(body), errors);
        await none();
      });

      it('a description of exactly 500 characters is taken', async () => {
        const res = await post({ url: 'https://example.com/hook', description: 'd'.repeat(500) });
        expect(res.status).toBe(201);
      });

      it.each([
        ['an array', '[{"url":"https://example.com/hook"}]'],
        ['a string', '"https://example.com/hook"'],
        ['null', 'null'],
        ['a number', '42'],
      ])('a body that is %s', async (_name, raw) => {
        const res = await http()
          .post('/api/webhooks')
          .set(key)
          .set('Content-Type', 'application/json')
          .send(raw);
        expectInvalid(res, [{ field: '(body)', message: 'the body must be a JSON object' }]);
        await none();
      });

      it('no body at all: url must be a string', async () => {
        expectInvalid(await http().post('/api/webhooks').set(key), [
          { field: 'url', message: 'url must be a string' },
        ]);
        await none();
      });
    });

    describe('unreadable bodies', () => {
      itRefusesUnreadableBodies(() => http().post('/api/webhooks').set(key), none);
    });

    describe('access', () => {
      itTakesAnApiKeyOnly(
        customerToken,
        async (headers) =>
          http().post('/api/webhooks').set(headers).send({ url: 'https://example.com/hook' }),
        none,
      );
    });
  });

  describe('WEBHOOK_ALLOW_PRIVATE_NETWORKS unset', () => {
    const { http, key } = useWebhookApp({ WEBHOOK_ALLOW_PRIVATE_NETWORKS: '' });
    const post = (url: string) => http().post('/api/webhooks').set(key).send({ url });

    it.each([
      'http://127.0.0.1/hook',
      'http://127.1.2.3:8080/hook',
      'http://[::1]/hook',
      'http://[::ffff:127.0.0.1]/hook',
      'http://10.0.0.1/hook',
      'http://172.16.5.4/hook',
      'http://192.168.1.1/hook',
      'http://100.64.0.1/hook',
      'http://169.254.1.1/hook',
      'http://[fe80::1]/hook',
      'http://[fd00::1]/hook',
    ])('400 for %s: a private address', async (url) => {
      expectInvalid(await post(url), [{ field: 'url', message: PRIVATE_REFUSAL }]);
    });

    it.each(['http://localhost/hook', 'http://api.localhost:3000/hook'])(
      '400 for %s: a loopback name',
      async (url) => {
        expectInvalid(await post(url), [
          { field: 'url', message: 'url must not point at a loopback address' },
        ]);
      },
    );

    it('400 for the cloud metadata address', async () => {
      expectInvalid(await post('http://169.254.169.254/'), [
        { field: 'url', message: METADATA_REFUSAL },
      ]);
    });

    it('takes a public address or a hostname (names are checked when connecting)', async () => {
      expect((await post('https://93.184.215.14/hook')).status).toBe(201);
      expect((await post('https://hooks.example.com/chat')).status).toBe(201);
    });
  });

  describe('with WEBHOOK_MAX_ENDPOINTS=2', () => {
    const { http, key, create } = useWebhookApp({ WEBHOOK_MAX_ENDPOINTS: '2' });

    it('409 webhook_limit_reached for the 3rd; a DELETE makes room', async () => {
      const first = await create();
      await create();

      const res = await http()
        .post('/api/webhooks')
        .set(key)
        .send({ url: 'https://example.com/third' });

      expectProblem(res, 409, 'webhook_limit_reached');
      const list = await http().get('/api/webhooks').set(key);
      expect((list.body as { webhooks: Endpoint[] }).webhooks).toHaveLength(2);
      expect((await http().delete(`/api/webhooks/${first.id}`).set(key)).status).toBe(200);
      expect((await create({ url: 'https://example.com/third' })).url).toBe(
        'https://example.com/third',
      );
    });

    it('a refused body is refused as such even at the limit', async () => {
      await create();
      await create();
      expectInvalid(await http().post('/api/webhooks').set(key).send({ url: 'ftp://x' }), [
        { field: 'url', message: 'url must be an http or https URL' },
      ]);
    });
  });

  itRefusesOpenMode((http) => http().post('/api/webhooks').send({ url: 'https://example.com/h' }));
});
