// Fast path: mirrors express@5.3.0 app.handle's Object.setPrototypeOf of each request and
// response (lib/application.js). Held equal by src/http/fast-path/express-message-classes.spec.ts.
import type { Express } from 'express';
import { IncomingMessage, ServerOptions, ServerResponse } from 'node:http';

/**
 * The request and response classes for `app`'s server: Node's, with Express's request and
 * response prototypes (app.request, app.response) already in place when Node creates them.
 *
 * Express gives every request and response its prototypes as it starts handling them
 * (Object.setPrototypeOf in app.handle). V8 then gives each object a hidden class of its own,
 * not shared with the objects of other requests: every property later added to it (by Express's
 * router, Nest, this server) builds a new one, and every property read on it misses the
 * engine's caches (docs/performance.md has the cost). Made with these classes, the objects
 * have the prototypes already, Express's setPrototypeOf changes nothing, and the objects of all
 * requests share their hidden classes. Nothing else changes: the prototype chain is the one
 * Express sets (the classes' own prototypes sit in front of Express's, which lead on to
 * Node's), and app.request and app.response become those prototypes, so Express finds them in
 * place.
 */
export function expressMessageClasses(
  app: Express,
): Pick<ServerOptions, 'IncomingMessage' | 'ServerResponse'> {
  class AppRequest extends IncomingMessage {}
  class AppResponse<Request extends IncomingMessage> extends ServerResponse<Request> {}
  Object.setPrototypeOf(AppRequest.prototype, app.request);
  Object.setPrototypeOf(AppResponse.prototype, app.response);
  app.request = AppRequest.prototype as Express['request'];
  app.response = AppResponse.prototype as Express['response'];
  return { IncomingMessage: AppRequest, ServerResponse: AppResponse };
}
