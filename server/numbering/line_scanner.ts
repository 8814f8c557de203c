/**
 * Line framing without buffering: tallyho's reply never depends on a line's content, only on
 * where lines end, so a connection keeps just the length of its unfinished line, never its bytes.
 *
 * @module
 */

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/** Returned by {@linkcode scanLines} when a line is longer than allowed. */
export const LINE_TOO_LONG = -1;

/** What a connection remembers between reads. */
export interface LineState {
  /** Bytes of the line that has begun but not yet ended. */
  pendingLineBytes: number;
  /** Whether the last byte of that unfinished line is `\r`. */
  pendingEndsWithCr: boolean;
}

/**
 * Counts the lines that `chunk` completes and updates `state` with the unfinished rest.
 *
 * A line's length excludes its `\n` and a `\r` just before it (CRLF is one terminator).
 *
 * @param chunk The bytes just read.
 * @param state The connection's line state, updated in place.
 * @param maxLineBytes The longest line allowed.
 * @returns The number of complete lines, or {@linkcode LINE_TOO_LONG}.
 */
export function scanLines(chunk: Uint8Array, state: LineState, maxLineBytes: number): number {
  let lines = 0;
  let start = 0;
  let carried = state.pendingLineBytes;
  let carriedCr = state.pendingEndsWithCr;
  for (;;) {
    const end = chunk.indexOf(NEWLINE, start);
    if (end === -1) break;
    let length = carried + (end - start);
    const endsWithCr = end > start ? chunk[end - 1] === CARRIAGE_RETURN : carriedCr;
    if (endsWithCr && length > 0) length--;
    if (length > maxLineBytes) return LINE_TOO_LONG;
    lines++;
    carried = 0;
    carriedCr = false;
    start = end + 1;
  }
  const rest = chunk.length - start;
  if (rest > 0) {
    carriedCr = chunk[chunk.length - 1] === CARRIAGE_RETURN;
    carried += rest;
  }
  // An unfinished line may still end in CRLF, so its `\r` is not counted against the limit yet.
  if (carried - (carriedCr ? 1 : 0) > maxLineBytes) return LINE_TOO_LONG;
  state.pendingLineBytes = carried;
  state.pendingEndsWithCr = carriedCr;
  return lines;
}
