import { createHash, randomUUID } from 'node:crypto';
import { hashToken, issueCustomerToken, sha256, tokenConversation } from './customer-tokens';

const reference = (text: string) => createHash('sha256').update(text).digest();

describe('customer tokens', () => {
  it('issues well-formed, distinct tokens, past many refills of the random pool', () => {
    const id = randomUUID();
    const tokens = Array.from({ length: 1_000 }, () => issueCustomerToken(id));

    for (const { token, hash } of tokens) {
      expect(tokenConversation(token)).toBe(id);
      expect(hash).toBe(reference(token).toString('base64url'));
    }
    const secrets = new Set(tokens.map(({ token }) => token.split('.')[1]));
    expect(secrets.size).toBe(tokens.length);
    // No secret is the pool's wiped bytes (zeros are "A" in base64url).
    expect([...secrets].some((secret) => /^A+$/.test(secret))).toBe(false);
  });

  it('hashes as SHA-256 always has: stored hashes stay valid', () => {
    for (const text of ['', 'key', 'é😀', 'x'.repeat(10_000)]) {
      expect(sha256(text).equals(reference(text))).toBe(true);
      expect(hashToken(text)).toBe(reference(text).toString('base64url'));
    }
  });
});
