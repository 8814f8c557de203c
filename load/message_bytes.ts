/**
 * The request a load run sends, from the command line's text: C-style escapes let a shell user
 * write the bytes a protocol needs (`PING\r\n`) without quoting tricks.
 *
 * @module
 */

import { ConfigError } from "../server/common/config_error.ts";
import { describe } from "../server/common/describe.ts";

const ESCAPES: Record<string, number> = { n: 10, r: 13, t: 9, "0": 0, "\\": 92 };

/**
 * Turns text with escapes (`\n`, `\r`, `\t`, `\0`, `\\`, `\xHH`) into bytes; everything else is
 * UTF-8.
 *
 * @param text The text as typed.
 * @returns The bytes.
 * @throws {ConfigError} For an unknown escape or a bad `\x`.
 *
 * @example
 * ```ts
 * decodeMessage("PING\\r\\n"); // Uint8Array [80, 73, 78, 71, 13, 10]
 * ```
 */
export function decodeMessage(text: string): Uint8Array {
  const bytes: number[] = [];
  const utf8 = new TextEncoder();
  let i = 0;
  while (i < text.length) {
    const char = text[i]!;
    if (char !== "\\") {
      const codePoint = text.codePointAt(i)!;
      const width = codePoint > 0xffff ? 2 : 1;
      bytes.push(...utf8.encode(text.slice(i, i + width)));
      i += width;
      continue;
    }
    const next = text[i + 1];
    if (next === "x") {
      const hex = text.slice(i + 2, i + 4);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) {
        throw new ConfigError(
          "message",
          `'message' has a bad \\x escape (needs two hex digits): got ${
            describe(text.slice(i, i + 4))
          }`,
        );
      }
      bytes.push(parseInt(hex, 16));
      i += 4;
      continue;
    }
    const escaped = next === undefined ? undefined : ESCAPES[next];
    if (escaped === undefined) {
      throw new ConfigError(
        "message",
        `'message' has an unknown escape (use \\n \\r \\t \\0 \\\\ \\xHH): got ${
          describe(text.slice(i, i + 2))
        }`,
      );
    }
    bytes.push(escaped);
    i += 2;
  }
  return new Uint8Array(bytes);
}

/**
 * Writes bytes back as escaped text, for reports.
 *
 * @param bytes A message.
 * @returns Text that {@linkcode decodeMessage} turns back into the same bytes (for ASCII).
 */
export function encodeMessage(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) {
    if (byte === 10) text += "\\n";
    else if (byte === 13) text += "\\r";
    else if (byte === 9) text += "\\t";
    else if (byte === 92) text += "\\\\";
    else if (byte >= 32 && byte < 127) text += String.fromCharCode(byte);
    else text += `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  return text;
}
