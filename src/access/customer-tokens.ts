import { hash, randomFillSync, timingSafeEqual } from 'node:crypto';

/**
 * A customer token is `<conversationId>.<32 random bytes, base64url>`: it names the one
 * conversation it opens, and its secret half is unguessable. Stores keep only its hash.
 */
const TOKEN = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.[A-Za-z0-9_-]{43}$/;

export interface IssuedToken {
  token: string;
  hash: string;
}

/** One call, no Hash object: crypto.hash (Node 20.12+) costs a third of createHash's chain. */
export function sha256(text: string): Buffer {
  return hash('sha256', text, 'buffer');
}

/** What the store keeps of a token: its SHA-256, base64url. */
export function hashToken(token: string): string {
  return hash('sha256', token, 'base64url');
}

const SECRET_BYTES = 32;
/**
 * Random bytes for secrets, drawn from the system's generator (as randomBytes draws them) in
 * batches, as Node itself does for randomUUID: a call costs about the same whatever its size,
 * and one call per create was the largest single cost of opening a conversation (see
 * docs/performance.md). Each secret's bytes are wiped from the pool as they are taken.
 */
const pool = Buffer.alloc(SECRET_BYTES * 128);
let taken = pool.length;

/** 32 random bytes, base64url (43 characters). */
function secret(): string {
  if (taken === pool.length) {
    randomFillSync(pool);
    taken = 0;
  }
  const text = pool.toString('base64url', taken, taken + SECRET_BYTES);
  pool.fill(0, taken, taken + SECRET_BYTES);
  taken += SECRET_BYTES;
  return text;
}

export function issueCustomerToken(conversationId: string): IssuedToken {
  const token = `${conversationId}.${secret()}`;
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
