/**
 * The set of reply numbers one thread has seen, as a paged bitmap: one bit per number, in pages
 * of 4096 numbers made on first use. Recording a number is a bit test-and-set, with no
 * allocation unless the number opens a new page; contiguous numbers (what a counter hands out)
 * cost 1 bit each. Threads keep their own set during the run and merge at the end, where a bit
 * set in two threads' pages is a number seen twice.
 *
 * @module
 */

const PAGE_BITS = 4096;
const PAGE_WORDS = PAGE_BITS / 32;

/** Options for {@linkcode SeenNumbers}. */
export interface SeenNumbersOptions {
  /**
   * Pages (of 4096 numbers, 512 bytes) one set may hold; numbers that would need more are
   * counted as untracked instead of growing memory without bound.
   * @default {65536} (32 MiB)
   */
  maxPages?: number;
}

/** A paged bitmap of numbers. */
export class SeenNumbers {
  /** Page index to its bits. */
  readonly pages: Map<number, Uint32Array> = new Map();
  /** Distinct numbers recorded. */
  distinct = 0;
  /** Numbers not recorded because the page limit was reached. */
  untracked = 0;
  readonly #maxPages: number;
  #lastIndex = -1;
  #lastPage: Uint32Array | null = null;

  /** @param options Limits. */
  constructor(options: SeenNumbersOptions = {}) {
    const maxPages = options.maxPages ?? 65536;
    if (!Number.isInteger(maxPages) || maxPages < 1) {
      throw new RangeError(`'maxPages' must be a positive integer: got ${maxPages}`);
    }
    this.#maxPages = maxPages;
  }

  /**
   * Records a number.
   *
   * @param n A non-negative safe integer.
   * @returns `true` if it was already in the set (a repeat), `false` if new or untracked.
   */
  add(n: number): boolean {
    const index = Math.floor(n / PAGE_BITS);
    let page = this.#lastPage;
    if (index !== this.#lastIndex || page === null) {
      page = this.pages.get(index) ?? null;
      if (page === null) {
        if (this.pages.size >= this.#maxPages) {
          this.untracked++;
          return false;
        }
        page = new Uint32Array(PAGE_WORDS);
        this.pages.set(index, page);
      }
      this.#lastIndex = index;
      this.#lastPage = page;
    }
    const bit = n - index * PAGE_BITS;
    const word = bit >>> 5;
    const mask = 1 << (bit & 31);
    if ((page[word]! & mask) !== 0) return true;
    page[word] = page[word]! | mask;
    this.distinct++;
    return false;
  }

  /**
   * Adds another set's numbers to this one.
   *
   * @param pages Another set's pages (as sent from another thread).
   * @param onRepeat Called with each number present in both sets.
   * @returns How many numbers were present in both.
   */
  merge(pages: Map<number, Uint32Array>, onRepeat: (n: number) => void = () => {}): number {
    let repeats = 0;
    for (const [index, theirs] of pages) {
      const ours = this.pages.get(index);
      if (ours === undefined) {
        if (this.pages.size >= this.#maxPages) {
          this.untracked += countBits(theirs);
          continue;
        }
        this.pages.set(index, theirs.slice());
        this.distinct += countBits(theirs);
        continue;
      }
      for (let w = 0; w < PAGE_WORDS; w++) {
        const both = ours[w]! & theirs[w]!;
        if (both !== 0) {
          for (let b = 0; b < 32; b++) {
            if ((both & (1 << b)) !== 0) onRepeat(index * PAGE_BITS + w * 32 + b);
          }
          repeats += popcount(both);
        }
        this.distinct += popcount(theirs[w]! & ~ours[w]!);
        ours[w] = ours[w]! | theirs[w]!;
      }
    }
    this.#lastIndex = -1;
    this.#lastPage = null;
    return repeats;
  }
}

function popcount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

function countBits(page: Uint32Array): number {
  let total = 0;
  for (let w = 0; w < page.length; w++) total += popcount(page[w]!);
  return total;
}
