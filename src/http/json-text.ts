/**
 * An answer that is already JSON text, typed by the DTO it serializes. A handler returns it
 * as it would return the DTO; the HTTP adapter's reply (TimedExpressAdapter) writes the text
 * as res.json would write the DTO (fast-path/json-response.ts), without serializing it again.
 *
 * The text is one string, or pieces to be written in order (a long history arrives from the
 * store in pieces, and is never joined into one large string).
 */
export class JsonText<Dto> {
  /** Never set: ties the text to its DTO, so that a handler's return type says what it sends. */
  declare private readonly dto?: Dto;

  constructor(readonly json: string | readonly string[]) {}

  /** The DTO serialized here, once. */
  static of<Dto>(dto: Dto): JsonText<Dto> {
    return new JsonText<Dto>(JSON.stringify(dto));
  }
}
