import { HttpStatus, Inject, Injectable, NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProblemException, ValidationFailedException } from '../common/problem';
import { AppConfig, appConfig } from '../config/app.config';
import { ConversationRepository, KeyClaim } from './conversation.repository';
import { toProblem } from './conversations.service';

/** 1–255 visible ASCII characters. */
const VALID_KEY = /^[\x21-\x7e]{1,255}$/;
/** How often a request waits for the same request under way elsewhere. */
const POLL_MS = 20;

export const IDEMPOTENCY_HEADER = 'Idempotency-Key';
export const REPLAYED_HEADER = 'Idempotent-Replayed';

/**
 * Makes a POST safe to retry: a request with an Idempotency-Key that was answered before (the
 * same key, method, path and body, within IDEMPOTENCY_TTL_MS and the conversation's life) gets
 * the same status and body again, with `Idempotent-Replayed: true`, and creates nothing.
 * Concurrent twins wait for the first. The same key with another request is a 422. Only
 * successes are kept: after a failure, a retry runs again. Keys live in the store, so this
 * holds across workers and instances.
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
    key: string | string[],
    req: Request,
    res: Response,
    next: NextFunction,
  ): Promise<void> {
    if (typeof key !== 'string' || !VALID_KEY.test(key)) {
      throw new ValidationFailedException([
        { field: IDEMPOTENCY_HEADER, message: 'must be 1 to 255 visible ASCII characters' },
      ]);
    }
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
      res.setHeader(REPLAYED_HEADER, 'true');
      if (claim.response.location) {
        res.setHeader('Location', claim.response.location);
      }
      res.status(claim.response.status).type('application/json').send(claim.response.body);
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
                body,
                ...(typeof location === 'string' ? { location } : {}),
              },
              this.ttlMs,
            )
          : this.repository.releaseKey(key, fingerprint);
      settled.catch(() => undefined); // kept or not, this request has been answered
    });
    next();
  }

  /** Claims the key, waiting while the same request is under way elsewhere. */
  private async claim(key: string, fingerprint: string): Promise<KeyClaim> {
    const deadline = Date.now() + this.pendingMs;
    for (;;) {
      let claim: KeyClaim;
      try {
        claim = await this.repository.claimKey(key, fingerprint, this.pendingMs);
      } catch (error) {
        throw toProblem(error);
      }
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
