import { Injectable } from '@nestjs/common';
import { normalizeIp } from '@nestjs/throttler';
import type { Request } from 'express';
import { timingSafeEqual } from 'node:crypto';
import { ValidationFailedException } from '../common/errors/problem.catalogue';
import { AccessSettings } from '../config/app.settings';
import { CustomerTokenHashes } from './customer-token-hashes';
import { sameHash, sha256, tokenConversation } from './customer-tokens';

/** Who a request comes from, as far as access control is concerned. */
export type Principal =
  /** API_KEYS is not set: access control is off. */
  | { kind: 'open' }
  /** A trusted caller; `id` names its key without revealing it. */
  | { kind: 'api-key'; id: string }
  /**
   * A customer holding the token of one conversation; `anonymous` when the token was minted
   * without an API key (see anonymousTokensOf).
   */
  | { kind: 'customer'; conversationId: string; anonymous: boolean }
  /** No credential. */
  | { kind: 'anonymous' }
  /** A credential that is not a key and not a valid token. */
  | { kind: 'invalid' };

/**
 * A request's client address as rate limits and event-stream places count it: req.ip (the
 * connection's, or the proxy's X-Forwarded-For under TRUST_PROXY), an IPv6 client by its
 * /64 subnet, the throttler's default prefix (the rate-limit module sets no other).
 */
export function clientAddress(req: Request): string {
  return normalizeIp(req.ip ?? '');
}

/**
 * Whose budget a request counts against (rate limits, event-stream places): its API key, its
 * conversation's customer token, or, for everyone else, its client address.
 */
export function callerOf(principal: Principal, ip: string | undefined): string {
  switch (principal.kind) {
    case 'api-key':
      return `key:${principal.id}`;
    case 'customer':
      return `conversation:${principal.conversationId}`;
    default:
      return `ip:${ip ?? ''}`;
  }
}

/**
 * How many clients' worth an address may use through customer tokens minted without an API
 * key: its requests per window and its event streams, as RATE_LIMIT_MAX and
 * MAX_EVENT_STREAMS_PER_CLIENT times this.
 */
export const ANONYMOUS_TOKENS_PER_ADDRESS = 10;

/**
 * The second budget an anonymous customer token's request counts against, besides its own
 * (callerOf): that of every anonymous token used from its address, which is capped at
 * ANONYMOUS_TOKENS_PER_ADDRESS times a client's. Anyone may mint such tokens, each with a
 * budget of its own, so without it one address could take as many budgets as it likes. Null
 * for every other caller.
 */
export function anonymousTokensOf(principal: Principal, ip: string | undefined): string | null {
  return principal.kind === 'customer' && principal.anonymous
    ? `anonymous-tokens:ip:${ip ?? ''}`
    : null;
}

/**
 * `?access_token=` (RFC 6750, section 2.3), taken on event streams only: a browser's
 * EventSource cannot send an Authorization header. Given twice, it is refused.
 */
function queryCredential(req: Request): string | undefined {
  // req.query parses the query string on every read: only for event streams.
  if (req.method !== 'GET' || !req.path.endsWith('/events')) {
    return undefined;
  }
  const token = req.query.access_token;
  if (token !== undefined && typeof token !== 'string') {
    throw new ValidationFailedException([
      { field: 'access_token', message: 'access_token must be given once' },
    ]);
  }
  return token === undefined ? undefined : `Bearer ${token}`;
}

/** How long a worker trusts a token it has checked against the store. */
const TOKEN_CACHE_MS = 60_000;
const TOKEN_CACHE_SIZE = 10_000;

/** Open mode's one principal (no API_KEYS): everyone may do anything. */
const OPEN_PRINCIPAL: Principal = Object.freeze({ kind: 'open' });
const OPEN: Promise<Principal> = Promise.resolve(OPEN_PRINCIPAL);

/** A request's principal, once resolved (see AccessService.principal). */
const PRINCIPAL = Symbol('principal');
type Resolved = Request & { [PRINCIPAL]?: Promise<Principal> };

/**
 * Tells who a request comes from, once per request. API keys are compared in constant time
 * (their SHA-256 digests, every key each time); a customer token is checked against the hash
 * its conversation keeps in the store, and trusted for a minute after that.
 */
@Injectable()
export class AccessService {
  readonly enabled: boolean;
  private readonly keys: { id: string; digest: Buffer }[];
  /** Token hash → its principal and when this worker stops trusting it without asking. */
  private readonly checkedTokens = new Map<string, { principal: Principal; until: number }>();

  constructor(
    private readonly tokenHashes: CustomerTokenHashes,
    settings: AccessSettings,
  ) {
    this.keys = settings.apiKeys.map((key) => {
      const digest = sha256(key);
      return { id: digest.toString('hex').slice(0, 12), digest };
    });
    this.enabled = this.keys.length > 0;
  }

  /** Open mode's principal, the same for every request, known without a wait; null with API_KEYS. */
  openPrincipal(): Principal | null {
    return this.enabled ? null : OPEN_PRINCIPAL;
  }

  principal(req: Request): Promise<Principal> {
    if (!this.enabled) {
      return OPEN; // the same for every request: nothing to look up or keep
    }
    // On the request itself: a WeakMap entry per request costs more, in time and in GC.
    return ((req as Resolved)[PRINCIPAL] ??= this.resolve(
      req.headers.authorization ?? queryCredential(req),
    ));
  }

  /**
   * Whether the request carries an API key, which decides whether the token its create mints
   * is anonymous. Open mode (no API_KEYS) has no keys: ask `enabled` first, without a wait.
   */
  async hasApiKey(req: Request): Promise<boolean> {
    return (await this.principal(req)).kind === 'api-key';
  }

  /** With API_KEYS set (see principal). */
  private async resolve(authorization: string | undefined): Promise<Principal> {
    if (authorization === undefined) {
      return { kind: 'anonymous' };
    }
    const match = /^Bearer +(\S+) *$/i.exec(authorization);
    if (!match) {
      return { kind: 'invalid' };
    }
    const credential = match[1];
    const presented = sha256(credential);
    let keyId: string | null = null;
    for (const key of this.keys) {
      // No early exit: the time taken does not say which key, if any, matched.
      if (timingSafeEqual(presented, key.digest)) {
        keyId = key.id;
      }
    }
    if (keyId !== null) {
      return { kind: 'api-key', id: keyId };
    }
    // The same digest, as the store keeps it, serves the customer-token check.
    return (
      (await this.checkToken(credential, presented.toString('base64url'))) ?? { kind: 'invalid' }
    );
  }

  /**
   * The customer a token stands for, or null when it opens no conversation. Whether it is
   * anonymous comes with its hash, in the one store read.
   */
  private async checkToken(token: string, hash: string): Promise<Principal | null> {
    const conversationId = tokenConversation(token);
    if (!conversationId) {
      return null;
    }
    const now = Date.now();
    const cached = this.checkedTokens.get(hash);
    if (cached && cached.until > now) {
      return cached.principal;
    }
    const stored = await this.tokenHashes.customerToken(conversationId);
    if (!stored || !sameHash(hash, stored.hash)) {
      return null;
    }
    const principal: Principal = Object.freeze({
      kind: 'customer',
      conversationId,
      anonymous: stored.anonymous,
    });
    this.checkedTokens.delete(hash);
    this.checkedTokens.set(hash, { principal, until: now + TOKEN_CACHE_MS });
    if (this.checkedTokens.size > TOKEN_CACHE_SIZE) {
      this.checkedTokens.delete(this.checkedTokens.keys().next().value as string);
    }
    return principal;
  }
}
