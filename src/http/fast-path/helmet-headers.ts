// Fast path: mirrors helmet@8.3.0's middleware (index.mjs): the headers it sets, taken once.
// Held equal by src/http/fast-path/helmet-headers.spec.ts.
import type { Request, Response } from 'express';
import helmet, { type HelmetOptions } from 'helmet';

/**
 * The headers, in order, that a helmet middleware with these options sets on every response,
 * taken once from one call on a recording response, for the server to set from the list.
 * Only for options that are not functions of the request (a CSP nonce would be one).
 */
export function helmetHeaders(options?: Readonly<HelmetOptions>): [string, string][] {
  const headers: [string, string][] = [];
  let answered = false;
  const recorder = {
    setHeader: (name: string, value: string) => headers.push([name, value]),
    removeHeader: () => undefined, // X-Powered-By, which the app never sets
  };
  helmet(options)({} as Request, recorder as unknown as Response, (error?: unknown) => {
    if (error) {
      throw error instanceof Error ? error : new Error(String(error));
    }
    answered = true;
  });
  if (!answered) {
    throw new Error('helmet did not set its headers at once');
  }
  return headers;
}
