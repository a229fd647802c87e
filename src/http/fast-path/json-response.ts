// Fast path: mirrors express@5.3.0 res.json (lib/response.js) for JSON text already serialized.
// Held equal by src/http/fast-path/json-response.spec.ts.
import type { Response } from 'express';

/** What Express's res.json would set. */
const JSON_TYPE = 'application/json; charset=utf-8';

/** Below this many characters the pieces go out as one write: one system call. */
const ONE_WRITE_CHARS = 16 * 1024;

/**
 * Sends a JSON body that arrives as pieces of text (see ConversationHistory.messagesJson).
 * A small body is joined and written once; a large one is written piece by piece, so that
 * no copy of the whole body is ever made.
 */
export function sendJsonPieces(res: Response, status: number, pieces: readonly string[]): void {
  let chars = 0;
  for (const piece of pieces) {
    chars += piece.length;
  }
  if (chars < ONE_WRITE_CHARS) {
    sendJson(res, status, pieces.join(''));
    return;
  }
  res.statusCode = status;
  res.setHeader('Content-Type', JSON_TYPE);
  let bytes = 0;
  for (const piece of pieces) {
    bytes += Buffer.byteLength(piece);
  }
  res.setHeader('Content-Length', bytes);
  for (const piece of pieces) {
    res.write(piece);
  }
  res.end();
}

/**
 * Sends JSON text as Express's res.json would send it (status, Content-Type, the length Node
 * sets for a body ended at once), without its per-call work: the type's lookup, the charset
 * parsing, the freshness check that only a GET needs. A HEAD answer goes without the
 * Content-Length that res.json would give it.
 */
export function sendJson(res: Response, status: number, json: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', JSON_TYPE);
  res.end(json);
}
