import { expectProblem, FieldError } from '../utils/problem';
import {
  eventually,
  expectInvalid,
  itRefusesOpenMode,
  itRefusesUnreadableBodies,
  itTakesAnApiKeyOnly,
  MALFORMED_WEBHOOK_IDS,
  UNKNOWN_WEBHOOK_ID,
  useWebhookApp,
} from '../utils/webhook-api';
import type { WebhookReceiver } from '../utils/webhook-receiver';

const RETENTION_MS = 60_000;
const SINCE_RULE = 'since must be a time in ms since the epoch';

describe('POST /api/webhooks/{webhookId}/recover', () => {
  describe(`API_KEYS set, WEBHOOK_RETENTION_MS=${RETENTION_MS}, retries in ms`, () => {
    const { http, key, create, deliveries, receiver, settled, failedDelivery, customerToken } =
      useWebhookApp({ WEBHOOK_RETENTION_MS: String(RETENTION_MS) });
    const recover = (id: string, body?: unknown) => {
      const req = http().post(`/api/webhooks/${id}/recover`).set(key);
      return body === undefined ? req : req.send(body as object);
    };

    it('202 { requeued }: every failed delivery since then is sent again, same id and body', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url, events: ['message.deleted'] });
      const early = await failedDelivery(r, ep.id);
      await new Promise((resolve) => setTimeout(resolve, 5));
      const since = Date.now();
      const a = await failedDelivery(r, ep.id);
      const b = await failedDelivery(r, ep.id);
      expect(r.received).toHaveLength(12);
      r.answer = () => ({ status: 204 });

      const res = await recover(ep.id, { since });

      expect(res.status).toBe(202);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({ requeued: 2 });
      await eventually(() => r.received.length === 14, 5_000, 'the two recovered');
      expect(r.ids().slice(12).sort()).toEqual([a, b].sort());
      for (const got of r.received.slice(12)) {
        expect(got.body).toBe(r.received.find((x) => x.id === got.id)?.body);
        expect(r.verifiedWith(got, ep.secret)).toBe(true);
      }
      await settled(ep.id, a, 'succeeded');
      await settled(ep.id, b, 'succeeded');
      expect((await deliveries(ep.id, 'status=failed')).map((d) => d.id)).toEqual([early]);
    });

    it('nothing failed since then: 202 { requeued: 0 }; succeeded ones are not sent again', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url, events: ['message.deleted'] });
      const since = Date.now() - 1_000;
      const sent = await http().post(`/api/webhooks/${ep.id}/test`).set(key);
      await settled(ep.id, (sent.body as { deliveryId: string }).deliveryId, 'succeeded');

      const res = await recover(ep.id, { since });

      expect(res.status).toBe(202);
      expect(res.body).toEqual({ requeued: 0 });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(r.received).toHaveLength(1);
    });

    it('since just within WEBHOOK_RETENTION_MS is taken', async () => {
      const ep = await create();
      const res = await recover(ep.id, { since: Date.now() - RETENTION_MS + 1_000 });
      expect(res.status).toBe(202);
      expect(res.body).toEqual({ requeued: 0 });
    });

    describe('bad input: 400 validation_failed naming the field, and nothing sent', () => {
      const cases: [string, () => unknown, FieldError[]][] = [
        ['no since', () => ({}), [{ field: 'since', message: SINCE_RULE }]],
        ['since null', () => ({ since: null }), [{ field: 'since', message: SINCE_RULE }]],
        [
          'since a numeric string',
          () => ({ since: String(Date.now()) }),
          [{ field: 'since', message: SINCE_RULE }],
        ],
        [
          'since an ISO date',
          () => ({ since: new Date().toISOString() }),
          [{ field: 'since', message: SINCE_RULE }],
        ],
        [
          'since not an integer',
          () => ({ since: Date.now() - 0.5 }),
          [{ field: 'since', message: SINCE_RULE }],
        ],
        ['since negative', () => ({ since: -1 }), [{ field: 'since', message: SINCE_RULE }]],
        [
          'since beyond 2^53',
          () => ({ since: 2 ** 53 }),
          [{ field: 'since', message: SINCE_RULE }],
        ],
        [
          'since older than WEBHOOK_RETENTION_MS',
          () => ({ since: Date.now() - RETENTION_MS - 5_000 }),
          [
            {
              field: 'since',
              message: expect.stringMatching(
                new RegExp(
                  `^since must be within WEBHOOK_RETENTION_MS \\(${RETENTION_MS} ms\\): at or after \\d+$`,
                ),
              ) as unknown as string,
            },
          ],
        ],
        [
          'since 0',
          () => ({ since: 0 }),
          [
            {
              field: 'since',
              message: expect.stringMatching(
                /^since must be within WEBHOOK_RETENTION_MS/,
              ) as unknown as string,
            },
          ],
        ],
        [
          'an unknown field',
          () => ({ since: Date.now(), status: 'failed' }),
          [{ field: 'status', message: 'property status should not exist' }],
        ],
        [
          'a body that is an array',
          () => [Date.now()],
          [{ field: '(body)', message: 'the body must be a JSON object with since' }],
        ],
      ];

      let r: WebhookReceiver;
      let id = '';
      let failed = '';
      beforeEach(async () => {
        r = await receiver();
        id = (await create({ url: r.url, events: ['message.deleted'] })).id;
        failed = await failedDelivery(r, id);
      });

      it.each(cases)('%s', async (_name, body, errors) => {
        expectInvalid(await recover(id, body()), errors);
        await new Promise((resolve) => setTimeout(resolve, 30));
        expect(r.received).toHaveLength(4);
        expect((await deliveries(id, 'status=failed')).map((d) => d.id)).toEqual([failed]);
      });

      it.each(['null', '"x"', '7'])('the body %s', async (raw) => {
        const res = await http()
          .post(`/api/webhooks/${id}/recover`)
          .set(key)
          .set('Content-Type', 'application/json')
          .send(raw);
        expectInvalid(res, [
          { field: '(body)', message: 'the body must be a JSON object with since' },
        ]);
      });

      it('no body at all', async () => {
        expectInvalid(await recover(id), [
          { field: '(body)', message: 'the body must be a JSON object with since' },
        ]);
      });
    });

    describe('unreadable bodies', () => {
      let id = '';
      beforeEach(async () => {
        id = (await create()).id;
      });
      itRefusesUnreadableBodies(() => recover(id));
    });

    it('404 webhook_not_found for an unknown id', async () => {
      expectProblem(
        await recover(UNKNOWN_WEBHOOK_ID, { since: Date.now() }),
        404,
        'webhook_not_found',
      );
    });

    it.each(MALFORMED_WEBHOOK_IDS)('404 webhook_not_found for the malformed id %j', async (id) => {
      expectProblem(await recover(id, { since: Date.now() }), 404, 'webhook_not_found');
    });

    describe('access', () => {
      let r: WebhookReceiver;
      let id = '';
      beforeEach(async () => {
        r = await receiver();
        id = (await create({ url: r.url, events: ['message.deleted'] })).id;
        await failedDelivery(r, id);
      });
      itTakesAnApiKeyOnly(
        customerToken,
        async (headers) =>
          http()
            .post(`/api/webhooks/${id}/recover`)
            .set(headers)
            .send({ since: Date.now() - 10_000 }),
        async () => {
          await new Promise((resolve) => setTimeout(resolve, 30));
          expect(r.received).toHaveLength(4);
        },
      );
    });
  });

  itRefusesOpenMode((http) =>
    http().post(`/api/webhooks/${UNKNOWN_WEBHOOK_ID}/recover`).send({ since: Date.now() }),
  );
});
