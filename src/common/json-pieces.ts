import type { Response } from 'express';

/** Below this many characters the pieces go out as one write: one system call. */
const ONE_WRITE_CHARS = 16 * 1024;

/**
 * Sends a JSON body that arrives as pieces of text (see ConversationHistory.messagesJson).
 * A small body is joined and written once; a large one is written piece by piece, so that
 * no copy of the whole body is ever made.
 */
export function sendJsonPieces(res: Response, status: number, pieces: string[]): void {
  let chars = 0;
  for (const piece of pieces) {
    chars += piece.length;
  }
  res.status(status);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  if (chars < ONE_WRITE_CHARS) {
    res.end(pieces.join(''));
    return;
  }
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
