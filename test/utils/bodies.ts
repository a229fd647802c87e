/** A valid message body, as JSON text. */
export const MESSAGE = JSON.stringify({ sender: 'agent', content: 'hi' });

/** superagent would JSON.stringify a Buffer sent as JSON: send the bytes as they are. */
export const asIs = (body: unknown) => body as string;

/** `text` in UTF-7 (RFC 2152), every character but letters and digits base64-encoded. */
export function utf7(text: string): Buffer {
  const encoded = [...text].map((c) =>
    /[A-Za-z0-9 ]/.test(c)
      ? c
      : `+${Buffer.from(c, 'utf16le').swap16().toString('base64').replace(/=+$/, '')}-`,
  );
  return Buffer.from(encoded.join(''));
}

export function utf32le(text: string): Buffer {
  const points = [...text].map((c) => c.codePointAt(0) ?? 0);
  const out = Buffer.alloc(points.length * 4);
  points.forEach((point, i) => out.writeUInt32LE(point, i * 4));
  return out;
}
