/** Characters of message JSON per history piece: small enough to stay a cheap allocation. */
const PIECE_CHARS = 12 * 1024;

/**
 * The JSON array of `count` messages, whose JSON texts `jsonAt` gives in order, as pieces of
 * about PIECE_CHARS (see ConversationHistory.messagesJson): joined, they are the array.
 */
export function historyPieces(count: number, jsonAt: (index: number) => string): string[] {
  const pieces: string[] = [];
  let piece: string[] = [];
  let chars = 0;
  for (let i = 0; i < count; i++) {
    const json = jsonAt(i);
    piece.push(json);
    chars += json.length + 1;
    if (chars >= PIECE_CHARS) {
      pieces.push((pieces.length === 0 ? '[' : ',') + piece.join(','));
      piece = [];
      chars = 0;
    }
  }
  if (piece.length > 0 || pieces.length === 0) {
    pieces.push((pieces.length === 0 ? '[' : ',') + piece.join(','));
  }
  pieces[pieces.length - 1] += ']';
  return pieces;
}
