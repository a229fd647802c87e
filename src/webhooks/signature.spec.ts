import { Webhook } from 'standardwebhooks';
import { newSecret, secretKey, signedHeaders } from './signature';

const BODY = JSON.stringify({ id: 'evt_1', type: 'message.created', data: { text: 'héllo "x"' } });

describe('Standard Webhooks signatures', () => {
  it('signs what the reference library verifies, as a receiver would', () => {
    const secret = newSecret();
    const now = Math.floor(Date.now() / 1000);
    const headers = signedHeaders([secret], 'evt_1', now, BODY);
    expect(new Webhook(secret).verify(BODY, headers)).toEqual(JSON.parse(BODY));
    // The same signature the reference library makes.
    expect(headers['webhook-signature']).toBe(
      new Webhook(secret).sign('evt_1', new Date(now * 1000), BODY),
    );
  });

  it('signs with every secret in use, and each one verifies alone', () => {
    const [old, current] = [newSecret(), newSecret()];
    const now = Math.floor(Date.now() / 1000);
    const headers = signedHeaders([current, old], 'evt_2', now, BODY);
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    expect(new Webhook(old).verify(BODY, headers)).toBeDefined();
    expect(new Webhook(current).verify(BODY, headers)).toBeDefined();
    expect(() => new Webhook(newSecret()).verify(BODY, headers)).toThrow();
  });

  it('is refused by a receiver for another body, id or an old timestamp', () => {
    const secret = newSecret();
    const now = Math.floor(Date.now() / 1000);
    const headers = signedHeaders([secret], 'evt_3', now, BODY);
    expect(() => new Webhook(secret).verify(`${BODY} `, headers)).toThrow();
    expect(() => new Webhook(secret).verify(BODY, { ...headers, 'webhook-id': 'evt_4' })).toThrow();
    const old = signedHeaders([secret], 'evt_3', now - 10 * 60, BODY);
    expect(() => new Webhook(secret).verify(BODY, old)).toThrow();
  });

  it('makes secrets of 32 random bytes, and refuses what is not a secret', () => {
    const a = newSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(secretKey(a)).toHaveLength(32);
    expect(newSecret()).not.toBe(a);
    expect(() => secretKey('v1,whsec_abc')).toThrow(/whsec_/);
    expect(() => secretKey(`whsec_${Buffer.alloc(8).toString('base64')}`)).toThrow(/24 to 64/);
    expect(() => signedHeaders([a], 'evt.1', 1, BODY)).toThrow(/dot/);
  });
});
