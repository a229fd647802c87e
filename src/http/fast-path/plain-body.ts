// Fast path: mirrors body-parser@2.4.0 raw() (read.js) and raw-body@3.0.2 getRawBody (index.js),
// as express.raw runs them, for a body of declared length with no Content-Encoding.
// Held equal by test/body-reader.e2e-spec.ts.
import type { Request } from 'express';
import { problem } from '../../common/errors/problem.catalogue';

/** A Content-Length as Node's parser lets it through: digits only. */
const DECIMAL = /^\d{1,15}$/;
const EMPTY = Buffer.alloc(0);

/**
 * Whether the body is the common kind, which readPlainBody takes: not compressed, of a declared
 * length within `limit`, not yet read. Anything else (a Content-Encoding, chunks, a length over
 * the limit or malformed, a request already read) is for express.raw, which answers each of
 * those.
 */
export function isPlainBody(req: Request, limit: number): boolean {
  const { headers } = req;
  const length = headers['content-length'];
  return (
    headers['content-encoding'] === undefined &&
    headers['transfer-encoding'] === undefined &&
    length !== undefined &&
    DECIMAL.test(length) &&
    Number(length) <= limit &&
    req.readable &&
    !req.readableEnded
  );
}

/**
 * Reads a plain body (see isPlainBody) as raw-body would, without its general machinery: Node's
 * parser delivers exactly Content-Length bytes and then `end`. The bytes go to `decode`, whose
 * answer becomes `req.body` (what it throws, the rejection). A request that is closed or fails
 * first is refused as raw-body refuses it (400 "request aborted"): its client is gone.
 */
export function readPlainBody(req: Request, decode: (bytes: Buffer) => unknown): Promise<true> {
  return new Promise<true>((resolve, reject) => {
    let first: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    let ended = false;
    const onData = (chunk: Buffer) => {
      if (first === undefined) {
        first = chunk;
      } else {
        (chunks ??= [first]).push(chunk);
      }
    };
    // The listeners stay: `close` follows `end`, and then finds the reading over.
    const onEnd = () => {
      ended = true;
      try {
        const bytes = chunks ? Buffer.concat(chunks) : (first ?? EMPTY);
        req.body = decode(bytes);
        resolve(true);
      } catch (problem) {
        reject(problem);
      }
    };
    const onAbort = () => {
      if (!ended) {
        ended = true;
        reject(problem('bad_request', { status: 400 }));
      }
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onAbort);
    req.on('close', onAbort);
  });
}
