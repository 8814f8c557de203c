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
    target.set(this.greeting, offset);
    let end = offset + this.greeting.length + digitCount(n);
    target[end] = NEWLINE;
    const next = end + 1;
    // Fill the digits from the right; `%` and division stay exact for integers below 2^53.
    do {
      const q = Math.floor(n / 10);
      target[--end] = ZERO + (n - q * 10);
      n = q;
    } while (n > 0);
    return next;
  }

  /**
   * Encodes one reply into a buffer of its own.
   *
   * @param n The number.
   * @returns A new buffer holding exactly the reply.
   */
  encode(n: number): Uint8Array {
    const bytes = new Uint8Array(this.greeting.length + digitCount(n) + 1);
    this.write(bytes, 0, n);
    return bytes;
  }
}

function digitCount(n: number): number {
  let digits = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    digits++;
  }
  return digits;
}
