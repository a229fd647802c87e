import { expectProblem } from '../utils/problem';
import {
  BadBody,
  Endpoint,
  eventually,
  expectInvalid,
  itRefusesOpenMode,
  itRefusesUnreadableBodies,
  itTakesAnApiKeyOnly,
  MALFORMED_WEBHOOK_IDS,
  METADATA_REFUSAL,
  newEndpointView,
  PRIVATE_REFUSAL,
  sharedBadBodies,
  UNKNOWN_WEBHOOK_ID,
  useWebhookApp,
} from '../utils/webhook-api';

// Every URL rule is listed in post-webhooks.e2e-spec.ts; PATCH applies the same ones, shown
// here for each kind.
describe('PATCH /api/webhooks/{webhookId}', () => {
  describe('API_KEYS set, WEBHOOK_ALLOW_PRIVATE_NETWORKS=true', () => {
    const { http, key, create, read, receiver, customerToken } = useWebhookApp();
    const patch = (id: string, body: unknown) =>
      http()
        .patch(`/api/webhooks/${id}`)
        .set(key)
        .send(body as object);

    it('changes url, events and description: 200 with the view, no secret', async () => {
      const ep = await create();
      await new Promise((resolve) => setTimeout(resolve, 2));

      const res = await patch(ep.id, {
        url: 'https://other.example.com/hook',
        events: ['message.created'],
        description: 'moved',
      });

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual(
        newEndpointView({
          id: ep.id,
          url: 'https://other.example.com/hook',
          events: ['message.created'],
          description: 'moved',
          createdAt: ep.createdAt,
        }),
      );
      const view = res.body as Endpoint;
      expect(view.updatedAt).toBeGreaterThan(ep.createdAt);
      expect(JSON.stringify(view)).not.toContain(ep.secret);
      expect(await read(ep.id)).toEqual(view);
    });

    it('absent fields stay; an empty events list takes every event again', async () => {
      const ep = await create({ events: ['message.*'], description: 'keep' });
      const res = await patch(ep.id, { events: [] });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ url: ep.url, events: [], description: 'keep' });
      const empty = await patch(ep.id, {});
      expect(empty.status).toBe(200);
      expect(empty.body).toMatchObject({ url: ep.url, events: [], description: 'keep' });
    });

    it('enabled false disables it (manual) and nothing is sent; true enables it again', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url, events: ['conversation.created'] });

      const off = await patch(ep.id, { enabled: false });
      expect(off.status).toBe(200);
      expect(off.body).toMatchObject({ status: 'disabled', disabledReason: 'manual' });
      await http().post('/api/conversations').set(key);

      const on = await patch(ep.id, { enabled: true });
      expect(on.status).toBe(200);
      expect(on.body).toMatchObject({ status: 'enabled', disabledReason: null });
      await http().post('/api/conversations').set(key);
      await eventually(() => r.received.length === 1);
      await new Promise((resolve) => setTimeout(resolve, 100)); // the disabled one never comes
      expect(r.received).toHaveLength(1);
      // enabled true on an enabled endpoint, false on a disabled one: no change of state.
      expect((await patch(ep.id, { enabled: true })).body).toMatchObject({ status: 'enabled' });
      await patch(ep.id, { enabled: false });
      expect((await patch(ep.id, { enabled: false })).body).toMatchObject({
        disabledReason: 'manual',
      });
    });

    it('enabled true clears a disable for 410 (reason gone)', async () => {
      const r = await receiver();
      r.answer = () => ({ status: 410 });
      const ep = await create({ url: r.url });
      expect((await http().post(`/api/webhooks/${ep.id}/test`).set(key)).status).toBe(202);
      await eventually(async () => (await read(ep.id)).disabledReason === 'gone');

      const res = await patch(ep.id, { enabled: true });

      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        status: 'enabled',
        disabledReason: null,
        failingSince: null,
      });
    });

    it('a private address is taken with private networks allowed', async () => {
      const ep = await create();
      expect((await patch(ep.id, { url: 'http://127.0.0.1:9/hook' })).status).toBe(200);
      expect((await patch(ep.id, { url: 'http://[::1]:9/hook' })).status).toBe(200);
    });

    describe('bad input: 400 validation_failed naming the field, and nothing changed', () => {
      const cases: BadBody[] = [
        ...sharedBadBodies({}),
        [
          'enabled that is null',
          { enabled: null },
          [{ field: 'enabled', message: 'enabled must be true or false' }],
        ],
        [
          'enabled that is a string',
          { enabled: 'false' },
          [{ field: 'enabled', message: 'enabled must be true or false' }],
        ],
        [
          'enabled that is a number',
          { enabled: 0 },
          [{ field: 'enabled', message: 'enabled must be true or false' }],
        ],
        [
          'a body that is an array',
          [{ enabled: false }],
          [{ field: '(body)', message: 'the body must be a JSON object' }],
        ],
      ];

      it.each(cases)('%s', async (_name, body, errors) => {
        const ep = await create({ events: ['message.*'], description: 'keep' });
        const before = await read(ep.id);
        expectInvalid(await patch(ep.id, body), errors);
        expect(await read(ep.id)).toEqual(before);
      });

      it('a url with null: refused, not cleared', async () => {
        const ep = await create();
        const res = await patch(ep.id, { url: null });
        expectInvalid(res, [{ field: 'url', message: 'url must be a string' }]);
        expect((await read(ep.id)).url).toBe(ep.url);
      });
    });

    describe('unreadable bodies', () => {
      let id = '';
      let before: Endpoint;
      itRefusesUnreadableBodies(
        () => http().patch(`/api/webhooks/${id}`).set(key),
        async () => expect(await read(id)).toEqual(before),
      );
      beforeEach(async () => {
        id = (await create()).id;
        before = await read(id);
      });
    });

    it('404 webhook_not_found for an unknown id', async () => {
      expectProblem(await patch(UNKNOWN_WEBHOOK_ID, { enabled: false }), 404, 'webhook_not_found');
    });

    it.each(MALFORMED_WEBHOOK_IDS)('404 webhook_not_found for the malformed id %j', async (id) => {
      expectProblem(await patch(id, { enabled: false }), 404, 'webhook_not_found');
    });

    describe('access', () => {
      let id = '';
      itTakesAnApiKeyOnly(
        customerToken,
        async (headers) => {
          id = (await create()).id;
          return http().patch(`/api/webhooks/${id}`).set(headers).send({ enabled: false });
        },
        async () => expect((await read(id)).status).toBe('enabled'),
      );
    });
  });

  describe('WEBHOOK_ALLOW_PRIVATE_NETWORKS unset', () => {
    const { http, key, create, read } = useWebhookApp({ WEBHOOK_ALLOW_PRIVATE_NETWORKS: '' });

    it.each([
      ['http://127.0.0.1/hook', PRIVATE_REFUSAL],
      ['http://[::1]/hook', PRIVATE_REFUSAL],
      ['http://192.168.0.10/hook', PRIVATE_REFUSAL],
      ['http://localhost/hook', 'url must not point at a loopback address'],
      ['http://169.254.169.254/hook', METADATA_REFUSAL],
    ])('400 for %s, and the url stays', async (url, message) => {
      const ep = await create();
      const res = await http().patch(`/api/webhooks/${ep.id}`).set(key).send({ url });
      expectInvalid(res, [{ field: 'url', message }]);
      expect((await read(ep.id)).url).toBe(ep.url);
    });
  });

  itRefusesOpenMode((http) =>
    http().patch(`/api/webhooks/${UNKNOWN_WEBHOOK_ID}`).send({ enabled: false }),
  );
});
