import { HttpStatus, Inject, Injectable, NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessService, Principal } from '../access/access.service';
import { issueCustomerToken } from '../access/customer-tokens';
import { ProblemException, ValidationFailedException } from '../common/problem';
import { AppConfig, appConfig } from '../config/app.config';
import { ConversationRepository, KeptResponse, KeyClaim } from './conversation.repository';
import { fromStore } from './conversations.service';

/** 1–255 visible ASCII characters. */
const VALID_KEY = /^[\x21-\x7e]{1,255}$/;
/** How often a request waits for the same request under way elsewhere. */
const POLL_MS = 20;

export const IDEMPOTENCY_HEADER = 'Idempotency-Key';
export const REPLAYED_HEADER = 'Idempotent-Replayed';

/** Whose keys a request uses; null for a wrong credential. */
function keyScope(principal: Principal): string | null {
  switch (principal.kind) {
    case 'api-key':
      return `key:${principal.id}:`;
    case 'customer':
      return `conversation:${principal.conversationId}:`;
    case 'invalid':
      return null;
    default:
      return '';
  }
}

/** A response body to keep: a customer token in it is taken out (see replayBody). */
function withoutToken(body: string): Pick<KeptResponse, 'body' | 'customerTokenOf'> {
  if (!body.includes('"customerToken"')) {
    return { body }; // the cheap test first: most bodies are messages
  }
  const { customerToken, ...rest } = JSON.parse(body) as { customerToken?: unknown; id: string };
  return typeof customerToken === 'string'
    ? { body: JSON.stringify(rest), customerTokenOf: rest.id }
    : { body };
}

/**
 * Makes a POST safe to retry: a request with an Idempotency-Key that was answered before (the
 * same key, method, path and body, within IDEMPOTENCY_TTL_MS and the conversation's life) gets
 * the same status and body again, with `Idempotent-Replayed: true`, and creates nothing.
 * Concurrent twins wait for the first. The same key with another request is a 422. Only
 * successes are kept: after a failure, a retry runs again. Keys live in the store, so this
 * holds across workers and instances.
 *
 * Each caller (API key, customer token, or everyone without one) has keys of its own, so a
 * response is never replayed to another caller; a request with a wrong credential is left to
 * the access guard. A customer token is never kept: a replayed creation gets a new one, which
 * replaces the first (that answer was lost, or the client would not retry).
 *
 * A middleware on the two POST routes rather than an interceptor: Nest binds an async
 * resource for every interceptor call, a cost every POST would pay, key or not.
 */
@Injectable()
export class IdempotencyMiddleware implements NestMiddleware {
  private readonly ttlMs: number;
  private readonly pendingMs: number;

  constructor(
    private readonly repository: ConversationRepository,
    private readonly access: AccessService,
    @Inject(appConfig.KEY) config: AppConfig,
  ) {
    this.ttlMs = Math.min(config.IDEMPOTENCY_TTL_MS, config.CONVERSATION_TTL_MS);
    this.pendingMs = Math.max(10_000, 3 * config.STORE_TIMEOUT_MS);
  }

  use(req: Request, res: Response, next: NextFunction): void {
    const key = req.headers['idempotency-key'];
    if (key === undefined) {
      next();
      return;
    }
    this.handle(key, req, res, next).catch(next);
  }

  private async handle(
    header: string | string[],
    req: Request,
    res: Response,
    next: NextFunction,
  ): Promise<void> {
    if (typeof header !== 'string' || !VALID_KEY.test(header)) {
      throw new ValidationFailedException([
        { field: IDEMPOTENCY_HEADER, message: 'must be 1 to 255 visible ASCII characters' },
      ]);
    }
    const scope = keyScope(await this.access.principal(req));
    if (scope === null) {
      next(); // a wrong credential: the access guard answers 401
      return;
    }
    const key = scope + header;
    const fingerprint = createHash('sha256')
      .update(`${req.method} ${req.path}\n${JSON.stringify(req.body ?? null)}`)
      .digest('base64url');
    const claim = await this.claim(key, fingerprint);
    if (claim.state === 'mismatch') {
      throw new ProblemException(
        HttpStatus.UNPROCESSABLE_ENTITY,
        'idempotency_key_reused',
        'This Idempotency-Key was used with a different request (method, path or body).',
      );
    }
    if (claim.state === 'done') {
      const body = await this.replayBody(claim.response);
      res.setHeader(REPLAYED_HEADER, 'true');
      if (claim.response.location) {
        res.setHeader('Location', claim.response.location);
      }
      res.status(claim.response.status).type('application/json').send(body);
      return;
    }
    // Claimed: this request goes ahead; keep what it answers if it succeeds.
    let body: unknown;
    const send = res.send.bind(res);
    res.send = (sent?: unknown) => {
      body = sent;
      return send(sent);
    };
    res.once('finish', () => {
      const location = res.getHeader('location');
      const settled =
        res.statusCode >= 200 && res.statusCode < 300 && typeof body === 'string'
          ? this.repository.completeKey(
              key,
              fingerprint,
              {
                status: res.statusCode,
                ...withoutToken(body),
                ...(typeof location === 'string' ? { location } : {}),
              },
              this.ttlMs,
            )
          : this.repository.releaseKey(key, fingerprint);
      settled.catch(() => undefined); // kept or not, this request has been answered
    });
    next();
  }

  /** The kept body, with a new customer token where the first was taken out. */
  private async replayBody(response: KeptResponse): Promise<string> {
    const conversationId = response.customerTokenOf;
    if (!conversationId) {
      return response.body;
    }
    const { token, hash } = issueCustomerToken(conversationId);
    const replaced = await fromStore(
      this.repository.replaceCustomerTokenHash(conversationId, hash),
    );
    // A conversation evicted since has no token to give.
    return replaced
      ? JSON.stringify({ ...(JSON.parse(response.body) as object), customerToken: token })
      : response.body;
  }

  /** Claims the key, waiting while the same request is under way elsewhere. */
  private async claim(key: string, fingerprint: string): Promise<KeyClaim> {
    const deadline = Date.now() + this.pendingMs;
    for (;;) {
      const claim = await fromStore(this.repository.claimKey(key, fingerprint, this.pendingMs));
      if (claim.state !== 'pending') {
        return claim;
      }
      if (Date.now() > deadline) {
        throw new ProblemException(
          HttpStatus.CONFLICT,
          'idempotency_key_in_use',
          'A request with this Idempotency-Key is still under way. Retry later.',
          undefined,
          { 'Retry-After': '1' },
        );
      }
      await sleep(POLL_MS);
    }
  }
}
