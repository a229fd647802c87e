import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * A customer token is `<conversationId>.<32 random bytes, base64url>`: it names the one
 * conversation it opens, and its secret half is unguessable. Stores keep only its hash.
 */
const TOKEN = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.[A-Za-z0-9_-]{43}$/;

export interface IssuedToken {
  token: string;
  hash: string;
}

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** What the store keeps of a token: its SHA-256, base64url. */
export function hashToken(token: string): string {
  return sha256(token).toString('base64url');
}

export function issueCustomerToken(conversationId: string): IssuedToken {
  const token = `${conversationId}.${randomBytes(32).toString('base64url')}`;
  return { token, hash: hashToken(token) };
}

/** The conversation a well-formed token names; null for anything else. */
export function tokenConversation(token: string): string | null {
  return TOKEN.exec(token)?.[1] ?? null;
}

/** Compares two hashes in constant time. */
export function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
