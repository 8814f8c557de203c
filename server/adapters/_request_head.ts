/**
 * Reads an HTTP/1.x request head (the request line and the header lines, up to the blank line)
 * for the capped admin relay, which must know who a connection is before it gives it a slot of
 * the inner server: a probe, an operator with the token, or anyone else. Only what the relay
 * decides on is read; anything it cannot read is simply relayed, and the inner server (the
 * runtime's HTTP server) answers it as it always did.
 *
 * @module
 */

/** A request head as far as the relay reads it. */
export interface RequestHead {
  /** `GET`, `HEAD`, ... as sent. */
  method: string;
  /** The request target as sent: `/readyz?verbose=1`. */
  target: string;
  /** The header lines in order, names as sent. */
  headers: [string, string][];
}

const decoder = new TextDecoder("latin1");
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Parses a complete request head.
 *
 * @param bytes The head, ending with `\r\n\r\n` (anything after it is ignored).
 * @returns The head, or null when it is not one this parser reads (then relay it as it is).
 */
export function parseRequestHead(bytes: Uint8Array): RequestHead | null {
  const text = decoder.decode(bytes);
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const lines = text.slice(0, end).split("\r\n");
  const request = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0]!);
  if (request === null) return null;
  const headers: [string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon <= 0) return null;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return null;
    headers.push([name, line.slice(colon + 1).trim()]);
  }
  return { method: request[1]!, target: request[2]!, headers };
}

/**
 * The value of a header, when it appears exactly once (a repeated one is left to the inner server,
 * which decides what it means).
 *
 * @param head The head.
 * @param name The header's name, lower case.
 * @returns Its value, or null.
 */
export function headerOf(head: RequestHead, name: string): string | null {
  let found: string | null = null;
  for (const [key, value] of head.headers) {
    if (key.toLowerCase() !== name) continue;
    if (found !== null) return null;
    found = value;
  }
  return found;
}
