// content-type 1.x ships no types (@types/content-type would do the same); only what is used.
declare module 'content-type' {
  export interface ParsedMediaType {
    type: string;
    parameters: Record<string, string>;
  }
  /** Throws a TypeError for a header that does not follow RFC 7231's media-type grammar. */
  export function parse(header: string): ParsedMediaType;
}
