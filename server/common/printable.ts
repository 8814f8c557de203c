/**
 * Characters that must never reach a terminal or a log reader raw: the C0 and C1 controls and
 * DEL (ESC starts a terminal's escape sequences; U+0085 is a line break to some readers), the
 * line and paragraph separators U+2028 and U+2029 (line breaks to JavaScript and many editors),
 * the bidirectional controls (they reorder what a terminal shows), and lone surrogates (not text:
 * UTF-8 turns them into U+FFFD).
 *
 * @module
 */

// The C0 controls, DEL and the C1 controls; the separators; the bidirectional controls.
const CONTROLS = "\\u0000-\\u001f\\u007f-\\u009f";
const SEPARATORS = "\\u2028\\u2029";
const BIDI = "\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069";
const UNPRINTABLE = new RegExp(`[${CONTROLS}${SEPARATORS}${BIDI}]|\\p{Surrogate}`, "u");
const UNPRINTABLE_ALL = new RegExp(UNPRINTABLE.source, "gu");

/**
 * The first character of `text` that {@linkcode escapeUnprintable} would escape.
 *
 * @param text Any text.
 * @returns Its index and code point as `U+XXXX`, or null when there is none.
 */
export function firstUnprintable(text: string): { index: number; codePoint: string } | null {
  const match = UNPRINTABLE.exec(text);
  if (match === null) return null;
  return {
    index: match.index,
    codePoint: `U+${match[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`,
  };
}

/**
 * Writes every unprintable character (see the module) as a `\uXXXX` escape, so a line shows what
 * it holds and stays one line. In JSON text the result is still valid JSON with the same value.
 *
 * @param text Any text.
 * @returns The text, escaped.
 */
export function escapeUnprintable(text: string): string {
  return text.replace(
    UNPRINTABLE_ALL,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
