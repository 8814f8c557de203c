/**
 * Cuts reply bytes into lines and reads the number out of each `Hello World<N>` line, streaming:
 * a line split across reads is carried in four numbers on the connection, never as bytes, so
 * nothing is buffered or allocated per reply.
 *
 * Each line comes out as one number: N for a well-formed numbered reply, {@linkcode OTHER_LINE}
 * for a line that does not start with the greeting (`+PONG`, counted but not checked), and
 * {@linkcode MALFORMED_LINE} for one that starts with the greeting but carries no valid N
 * (no digits, a leading zero, other bytes, or past 2^53 - 1).
 *
 * @module
 */

/** A line that does not start with the greeting. */
export const OTHER_LINE = -1;
/** A line that starts with the greeting but has no valid number after it. */
export const MALFORMED_LINE = -2;

const NOT_GREETING = 1;
const BAD_NUMBER = 2;
const CR_PENDING = 4;
const NEWLINE = 10;
const CR = 13;
const ZERO = 48;
const NINE = 57;
/** Digits in 2^53 - 1; more cannot be an exact N. */
const MAX_DIGITS = 16;

/** Where a connection's current (unfinished) reply line stands. */
export interface LineState {
  /** Bytes of the current line seen so far. */
  lineBytes: number;
  /** The digits after the greeting, read as a number. */
  value: number;
  /** How many digits. */
  digits: number;
  /** Private flags. */
  lineFlags: number;
}

/** Reads reply lines for one thread; its output array is reused for every read. */
export class ReplyParser {
  /** The lines of the last {@linkcode ReplyParser.parse}, one number each (see module doc). */
  out: Float64Array = new Float64Array(1024);
  readonly #greeting: Uint8Array;

  /** @param greeting Text every numbered reply starts with, e.g. `Hello World`. */
  constructor(greeting: string) {
    this.#greeting = new TextEncoder().encode(greeting);
  }

  /**
   * Reads one chunk of a connection's reply stream.
   *
   * @param state The connection's line state, updated in place.
   * @param chunk Bytes as they arrived.
   * @returns How many lines the chunk completed; their values are in `out[0 .. n)`.
   */
  parse(state: LineState, chunk: Uint8Array): number {
    // A chunk of k bytes completes at most k lines.
    if (this.out.length < chunk.length) this.out = new Float64Array(chunk.length * 2);
    const out = this.out;
    const greeting = this.#greeting;
    const greetingBytes = greeting.length;
    let lineBytes = state.lineBytes;
    let value = state.value;
    let digits = state.digits;
    let flags = state.lineFlags;
    let lines = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (byte === NEWLINE) {
        out[lines++] = lineValue(flags, lineBytes, greetingBytes, digits, value);
        lineBytes = 0;
        value = 0;
        digits = 0;
        flags = 0;
        continue;
      }
      // A \r is part of the terminator only right before the \n.
      if ((flags & CR_PENDING) !== 0) flags = (flags | BAD_NUMBER) & ~CR_PENDING;
      if (lineBytes < greetingBytes) {
        if (byte !== greeting[lineBytes]) flags |= NOT_GREETING;
      } else if (byte >= ZERO && byte <= NINE) {
        if (digits === 0 && byte === ZERO) flags |= BAD_NUMBER;
        value = value * 10 + (byte - ZERO);
        digits++;
      } else if (byte === CR) {
        flags |= CR_PENDING;
      } else {
        flags |= BAD_NUMBER;
      }
      lineBytes++;
    }
    state.lineBytes = lineBytes;
    state.value = value;
    state.digits = digits;
    state.lineFlags = flags;
    return lines;
  }
}

function lineValue(
  flags: number,
  lineBytes: number,
  greetingBytes: number,
  digits: number,
  value: number,
): number {
  if ((flags & NOT_GREETING) !== 0 || lineBytes < greetingBytes) return OTHER_LINE;
  if ((flags & BAD_NUMBER) !== 0 || digits === 0 || digits > MAX_DIGITS) return MALFORMED_LINE;
  return value > Number.MAX_SAFE_INTEGER ? MALFORMED_LINE : value;
}
