import { createHmac, randomBytes } from 'node:crypto';

/**
 * Standard Webhooks 1.0 signing (https://www.standardwebhooks.com): every delivery carries
 * `webhook-id` (stable across retries), `webhook-timestamp` (the attempt's time, in whole
 * seconds) and `webhook-signature`: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`,
 * one per secret in use (a rotated-out secret signs beside the new one for a while), space
 * separated. A secret is `whsec_` and the base64 of its key.
 */

const SECRET_PREFIX = 'whsec_';
/** The key's length: the spec asks 24 to 64 random bytes; Svix makes 24, this makes 32. */
const KEY_BYTES = 32;

/** A new endpoint secret: `whsec_` and 32 random bytes in base64. */
export function newSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(KEY_BYTES).toString('base64')}`;
}

/** The key a secret holds; throws on a string that is not a `whsec_` secret of 24 to 64 bytes. */
export function secretKey(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) {
    throw new Error('a webhook secret begins with whsec_');
  }
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
  if (key.length < 24 || key.length > 64) {
    throw new Error('a webhook secret holds 24 to 64 bytes');
  }
  return key;
}

/** The headers of one attempt (`timestamp` in seconds), signed with every secret given. */
export function signedHeaders(
  secrets: readonly string[],
  id: string,
  timestamp: number,
  body: string,
): { 'webhook-id': string; 'webhook-timestamp': string; 'webhook-signature': string } {
  if (id.includes('.') || !Number.isSafeInteger(timestamp)) {
    // The signed content is "<id>.<timestamp>.<body>": neither may hold a dot.
    throw new Error('a webhook id holds no dot, and a timestamp is whole seconds');
  }
  const content = `${id}.${timestamp}.${body}`;
  const signature = secrets
    .map(
      (secret) => `v1,${createHmac('sha256', secretKey(secret)).update(content).digest('base64')}`,
    )
    .join(' ');
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signature,
  };
}
