import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { Request, Response } from 'express';
import { carriesBody, JsonBodyParser } from './json-body.parser';

/**
 * Reads the JSON body (JsonBodyParser) as the last global guard, after the rate limit and the
 * access rules (see AccessModule), so that a caller refused there costs no parsing and gets
 * its 429 or 401 whatever the body. A request without a body passes without a promise.
 */
@Injectable()
export class JsonBodyGuard implements CanActivate {
  constructor(private readonly parser: JsonBodyParser) {}

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const http = context.switchToHttp();
    const req = http.getRequest<Request>();
    return carriesBody(req) ? this.parser.parseLast(req, http.getResponse<Response>()) : true;
  }
}
