import { createParamDecorator, ExecutionContext, Injectable } from '@nestjs/common';
import { PipeTransform } from '@nestjs/common';
import type { Request } from 'express';
import { isUUID } from 'class-validator';
import { hash } from 'node:crypto';
import { AccessService, Principal } from '../access/access.service';
import { sha256 } from '../access/customer-tokens';
import { ValidationFailedException } from '../common/errors/problem.catalogue';
import { IdempotencySettings } from '../config/app.settings';
import { IdempotentWrite } from './conversation.repository';

export const IDEMPOTENCY_HEADER = 'Idempotency-Key';
export const REPLAYED_HEADER = 'Idempotent-Replayed';

/** 1–255 visible ASCII characters. */
const VALID_KEY = /^[\x21-\x7e]{1,255}$/;

function refuse(message: string): never {
  throw new ValidationFailedException([{ field: IDEMPOTENCY_HEADER, message }]);
}

/**
 * Whose keys a request uses. Every caller with a credential has keys of its own; callers
 * without one (open mode, or an anonymous create with PUBLIC_CONVERSATIONS) share one scope,
 * so their keys must be random UUIDs (version 4 with the RFC variant: 122 random bits; nil,
 * v1 and the like are guessable): a key then names one caller's request.
 */
function scopeOf(principal: Principal, key: string): string {
  switch (principal.kind) {
    case 'api-key':
      return `api-key ${principal.id}`;
    case 'customer':
      return `customer ${principal.conversationId}`;
    default:
      if (!isUUID(key, 4)) {
        refuse('without a credential, must be a random UUID (for example crypto.randomUUID())');
      }
      return 'anonymous';
  }
}

const digest = (...parts: string[]) =>
  // JSON keeps the parts apart: no scope and key can spell another pair.
  hash('sha256', JSON.stringify(parts), 'base64url');

/**
 * The id of the conversation a keyed create makes: derived from the scoped key, so that a
 * retry names the same conversation and the store can tell it was made (in one step, on one
 * Redis slot). A UUID v4 in form; one-way, so it says nothing of the key or its caller.
 */
export function conversationIdFor(scopedKey: string): string {
  const bytes = sha256(`conversation ${scopedKey}`);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Turns a POST's Idempotency-Key into what the store needs (see IdempotentWrite), or
 * undefined without one. Runs as a parameter pipe, so after the guards: a replay is
 * authorized and counted like any request, and a caller whose credential is refused never
 * reaches it.
 */
@Injectable()
export class IdempotencyKeyPipe implements PipeTransform<
  Request,
  Promise<IdempotentWrite | undefined> | undefined
> {
  /** How long a post's key is kept: see IdempotencySettings, where every such limit lives. */
  private readonly ttlMs: number;

  constructor(
    private readonly access: AccessService,
    settings: IdempotencySettings,
  ) {
    this.ttlMs = settings.postKeyTtlMs;
  }

  /** Without the header, answers at once: no promise, no principal to look up. */
  transform(req: Request): Promise<IdempotentWrite | undefined> | undefined {
    const header = req.headers['idempotency-key'];
    return header === undefined ? undefined : this.keyed(req, header);
  }

  private async keyed(req: Request, header: string | string[]): Promise<IdempotentWrite> {
    if (typeof header !== 'string' || !VALID_KEY.test(header)) {
      refuse('must be 1 to 255 visible ASCII characters');
    }
    const scope = scopeOf(await this.access.principal(req), header);
    return {
      key: digest(scope, header),
      // Lower case: routes match in any case, and the path's one variable part is a
      // conversation id, which the UUID pipe lowers for the store.
      fingerprint: digest(req.method, req.path.toLowerCase(), JSON.stringify(req.body ?? null)),
      ttlMs: this.ttlMs,
    };
  }
}

const CurrentRequest = createParamDecorator((_data: unknown, context: ExecutionContext) =>
  context.switchToHttp().getRequest<Request>(),
);

/** The request's Idempotency-Key, ready for the store (see IdempotencyKeyPipe). */
export const IdempotencyKey = () => CurrentRequest(IdempotencyKeyPipe);
