import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { JsonBodyParser } from '../http/json-body.parser';
import { problem } from '../common/errors/problem.catalogue';
import { AccessSettings } from '../config/app.settings';
import { ACCESS_RULE, AccessRule } from './access.decorator';
import { AccessService, Principal } from './access.service';

/**
 * Applies each route's AccessRule to the request's principal: 401 for a missing or wrong
 * credential, 404 for a customer token used on another conversation (as if it did not
 * exist), 403 for a customer doing what only a key may.
 */
@Injectable()
export class AccessGuard implements CanActivate {
  constructor(
    private readonly access: AccessService,
    private readonly body: JsonBodyParser,
    private readonly reflector: Reflector,
    private readonly settings: AccessSettings,
  ) {}

  /**
   * Open mode (no API_KEYS) and public routes answer a plain `true`, with no promise; open mode
   * refuses only the routes that need API keys to exist (api-key-required).
   */
  canActivate(context: ExecutionContext): Promise<boolean> | boolean {
    const rule = this.reflector.getAllAndOverride<AccessRule | undefined>(ACCESS_RULE, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!this.access.enabled) {
      if (rule === 'api-key-required') {
        throw problem('api_keys_required');
      }
      return true;
    }
    return rule === 'public' || this.apply(rule, context);
  }

  private async apply(rule: AccessRule | undefined, context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const req = http.getRequest<Request>();
    const principal = await this.access.principal(req);
    this.check(rule, principal, req);
    if (rule === 'customer-post' && principal.kind === 'customer') {
      // The one rule that needs the body: read here, ahead of JsonBodyGuard (once all the same).
      await this.body.parse(req, http.getResponse<Response>());
      if ((req.body as { sender?: unknown } | undefined)?.sender === 'agent') {
        throw problem('sender_not_allowed');
      }
    }
    return true;
  }

  private check(rule: AccessRule | undefined, principal: Principal, req: Request): void {
    switch (principal.kind) {
      case 'open':
      case 'api-key':
        return;
      case 'invalid':
        throw problem('unauthorized', {
          detail: 'The credential is not a valid API key or customer token.',
        });
      case 'anonymous':
        if (rule === 'open-create' && this.settings.publicConversations) {
          return;
        }
        throw problem('unauthorized');
      case 'customer':
        if (rule === 'open-create' && this.settings.publicConversations) {
          return;
        }
        if (rule !== 'customer' && rule !== 'customer-post') {
          throw problem('forbidden');
        }
        // The path's id in any case (the UUID pipe lowers it for the handler); the token's
        // id is lower case as issued, and the token itself was compared exactly.
        const { conversationId } = req.params;
        if (
          typeof conversationId !== 'string' ||
          conversationId.toLowerCase() !== principal.conversationId
        ) {
          throw problem('conversation_not_found');
        }
    }
  }
}
