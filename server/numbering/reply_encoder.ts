/**
 * Reply bytes: `<greeting><N>\n`.
 *
 * The greeting is encoded once; a reply is the greeting copied and the digits of N written
 * straight into the caller's buffer, so the hot path makes no strings and no garbage.
 *
 * @module
 */

const NEWLINE = 0x0a;
const ZERO = 0x30;
/** Digits in the largest exact number, 2^53 - 1 = 9007199254740991. */
const MAX_DIGITS = 16;
/** Greetings up to this many bytes are copied byte by byte. */
const SHORT_GREETING_BYTES = 32;

/**
 * Writes replies for one greeting.
 *
 * @example
 * ```ts
 * const encoder = new ReplyEncoder("Hello World");
 * new TextDecoder().decode(encoder.encode(42)); // "Hello World42\n"
 * ```
 */
export class ReplyEncoder {
  /** The greeting's UTF-8 bytes. */
  readonly greeting: Uint8Array;
  /** The most bytes one reply can take. */
  readonly maxReplyBytes: number;
  // Digits are made right to left here, then copied after the greeting.
  readonly #digits = new Uint8Array(MAX_DIGITS);

  /** @param greeting The text sent before the number. */
  constructor(greeting: string) {
    this.greeting = new TextEncoder().encode(greeting);
    this.maxReplyBytes = this.greeting.length + MAX_DIGITS + 1;
  }

  /**
   * Writes one reply into `target` at `offset`.
   *
   * @param target A buffer with at least {@linkcode maxReplyBytes} free bytes after `offset`.
   * @param offset Where the reply starts.
   * @param n The number, a positive integer up to 2^53 - 1.
   * @returns The offset just past the reply.
   */
  write(target: Uint8Array, offset: number, n: number): number {
    const greeting = this.greeting;
    const length = greeting.length;
    // A byte loop beats `set()` for short greetings: `set()` is a call into the runtime.
    if (length <= SHORT_GREETING_BYTES) {
      for (let i = 0; i < length; i++) target[offset + i] = greeting[i]!;
    } else {
      target.set(greeting, offset);
    }
    const digits = this.#digits;
    let i = MAX_DIGITS;
    // Digits are made in int32 arithmetic: `(m / 10) | 0` is a fast integer divide, where the
    // float `Math.floor(n / 10)` costs twice as much. Past 2^31 the number is split at 10^9, and
    // each part fits an int32.
    let low = n;
    if (n >= 2 ** 31) {
      const high = Math.floor(n / 1e9);
      let rest = (n - high * 1e9) | 0;
      for (let d = 0; d < 9; d++) {
        const q = (rest / 10) | 0;
        digits[--i] = ZERO + (rest - q * 10);
        rest = q;
      }
      low = high;
    }
    let m = low | 0;
    do {
      const q = (m / 10) | 0;
      digits[--i] = ZERO + (m - q * 10);
      m = q;
    } while (m > 0);
    let end = offset + length;
    while (i < MAX_DIGITS) target[end++] = digits[i++]!;
    target[end++] = NEWLINE;
    return end;
  }

  /**
   * Encodes one reply into a buffer of its own.
   *
   * @param n The number.
   * @returns A new buffer holding exactly the reply.
   */
  encode(n: number): Uint8Array {
    const bytes = new Uint8Array(this.maxReplyBytes);
    return bytes.slice(0, this.write(bytes, 0, n));
  }
}
