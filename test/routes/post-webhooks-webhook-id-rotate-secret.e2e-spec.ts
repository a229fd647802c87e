import { expectProblem } from '../utils/problem';
import {
  eventually,
  expectInvalid,
  itRefusesOpenMode,
  itRefusesUnreadableBodies,
  itTakesAnApiKeyOnly,
  MALFORMED_WEBHOOK_IDS,
  SECRET,
  UNKNOWN_WEBHOOK_ID,
  useWebhookApp,
} from '../utils/webhook-api';

const DAY_MS = 24 * 60 * 60 * 1000;

describe('POST /api/webhooks/{webhookId}/rotate-secret', () => {
  describe('API_KEYS set, WEBHOOK_ALLOW_PRIVATE_NETWORKS=true', () => {
    const { http, key, create, read, receiver, customerToken } = useWebhookApp();
    const rotate = (id: string) => http().post(`/api/webhooks/${id}/rotate-secret`).set(key);

    it('200 with the new secret and when the previous one stops; the view lists that time', async () => {
      const ep = await create();
      const before = Date.now();

      const res = await rotate(ep.id);

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({
        secret: expect.stringMatching(SECRET) as unknown,
        previousSecretExpiresAt: expect.any(Number) as unknown,
      });
      const { secret, previousSecretExpiresAt } = res.body as {
        secret: string;
        previousSecretExpiresAt: number;
      };
      expect(secret).not.toBe(ep.secret);
      expect(previousSecretExpiresAt).toBeGreaterThanOrEqual(before + DAY_MS);
      expect(previousSecretExpiresAt).toBeLessThanOrEqual(Date.now() + DAY_MS);
      const view = await read(ep.id);
      expect(view.previousSecretsExpireAt).toEqual([previousSecretExpiresAt]);
      expect(view.updatedAt).toBeGreaterThanOrEqual(before);
      expect(JSON.stringify(view)).not.toMatch(/whsec_/);
    });

    it('an empty JSON object as the body is taken', async () => {
      const ep = await create();
      expect((await rotate(ep.id).send({})).status).toBe(200);
    });

    it('deliveries are signed with the new secret and every previous one still signing', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url });
      const first = (await rotate(ep.id)).body as { secret: string };
      const second = (await rotate(ep.id)).body as { secret: string };

      const sent = await http().post(`/api/webhooks/${ep.id}/test`).set(key);
      const { deliveryId } = sent.body as { deliveryId: string };
      await eventually(() => r.ids().includes(deliveryId));

      const [got] = r.received;
      expect(got.signature.split(' ')).toHaveLength(3);
      for (const secret of [second.secret, first.secret, ep.secret]) {
        expect(r.verifiedWith(got, secret)).toBe(true);
      }
      expect(r.verifiedWith(got, 'whsec_' + Buffer.from('x'.repeat(24)).toString('base64'))).toBe(
        false,
      );
    });

    it('409 rotation_limit_reached on the 6th rotation within 24 h; the secret stays', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url });
      let secret = ep.secret;
      for (let i = 0; i < 5; i++) {
        const res = await rotate(ep.id);
        expect(res.status).toBe(200);
        secret = (res.body as { secret: string }).secret;
      }
      const before = await read(ep.id);
      expect(before.previousSecretsExpireAt).toHaveLength(5);

      expectProblem(await rotate(ep.id), 409, 'rotation_limit_reached');

      expect(await read(ep.id)).toEqual(before);
      const sent = await http().post(`/api/webhooks/${ep.id}/test`).set(key);
      await eventually(() => r.received.length === 1);
      expect(r.received[0].id).toBe((sent.body as { deliveryId: string }).deliveryId);
      expect(r.received[0].signature.split(' ')).toHaveLength(6);
      expect(r.verifiedWith(r.received[0], secret)).toBe(true);
    });

    describe('a body with fields: 400 validation_failed, and no rotation', () => {
      it.each([
        [
          { secret: 'whsec_mine' },
          [{ field: 'secret', message: 'property secret should not exist' }],
        ],
        [
          { a: 1, b: 2 },
          [
            { field: 'a', message: 'property a should not exist' },
            { field: 'b', message: 'property b should not exist' },
          ],
        ],
        [['x'], [{ field: '(body)', message: 'the body must be empty or a JSON object' }]],
      ])('%j', async (body, errors) => {
        const ep = await create();
        expectInvalid(await rotate(ep.id).send(body), errors);
        expect((await read(ep.id)).previousSecretsExpireAt).toEqual([]);
      });

      it.each(['null', '"x"', '7'])('the body %s', async (raw) => {
        const ep = await create();
        const res = await rotate(ep.id).set('Content-Type', 'application/json').send(raw);
        expectInvalid(res, [
          { field: '(body)', message: 'the body must be empty or a JSON object' },
        ]);
        expect((await read(ep.id)).previousSecretsExpireAt).toEqual([]);
      });
    });

    describe('unreadable bodies', () => {
      let id = '';
      beforeEach(async () => {
        id = (await create()).id;
      });
      itRefusesUnreadableBodies(
        () => rotate(id),
        async () => expect((await read(id)).previousSecretsExpireAt).toEqual([]),
      );
    });

    it('404 webhook_not_found for an unknown id', async () => {
      expectProblem(await rotate(UNKNOWN_WEBHOOK_ID), 404, 'webhook_not_found');
    });

    it.each(MALFORMED_WEBHOOK_IDS)('404 webhook_not_found for the malformed id %j', async (id) => {
      expectProblem(await rotate(id), 404, 'webhook_not_found');
    });

    describe('access', () => {
      let id = '';
      itTakesAnApiKeyOnly(
        customerToken,
        async (headers) => {
          id = (await create()).id;
          return http().post(`/api/webhooks/${id}/rotate-secret`).set(headers);
        },
        async () => expect((await read(id)).previousSecretsExpireAt).toEqual([]),
      );
    });
  });

  itRefusesOpenMode((http) => http().post(`/api/webhooks/${UNKNOWN_WEBHOOK_ID}/rotate-secret`));
});
