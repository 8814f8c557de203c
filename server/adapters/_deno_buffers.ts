/**
 * The Deno adapter's buffers, shared by the connections of one thread.
 *
 * Deno has no "readable" event: a connection learns of new bytes only by having a read pending,
 * and that read holds its buffer until bytes come. A fresh `Uint8Array` per connection costs its
 * size plus about 0.9 KB of ArrayBuffer and backing-store bookkeeping (measured on Deno 2.9.6:
 * 10,000 held reads into fresh 64-byte buffers took 5.6 KB each, into one shared buffer 4.7 KB).
 * {@linkcode ReadRegions} hands each connection a small region of a shared slab instead: its own
 * bytes (a read pending on one connection never writes where another's does) without a buffer
 * of its own. A connection whose reads fill its region switches to a buffer of its own that
 * grows, and goes back to its region once reads are small again.
 *
 * {@linkcode WriteArena} holds replies while Deno writes them: the handler's output is reused by
 * every connection, so a reply must be copied before the write is awaited. A `slice()` per reply
 * made an ArrayBuffer per reply (and a reply under 64 bytes is made on V8's heap, which a write
 * then has to move off it); the arena copies into slabs that are reused once their writes end.
 *
 * @module
 */

/** Bytes of a connection's read region: a request line or a small batch fits. */
export const REGION_BYTES = 256;
const SLAB_BYTES = 64 * 1024;

/** Read regions of shared slabs, one per connection, reused when a connection ends. */
export class ReadRegions {
  readonly #free: Uint8Array[] = [];
  #slab = new Uint8Array(0);
  #used = 0;

  /** A region for a new connection; give it back with {@linkcode give} when no read is pending. */
  take(): Uint8Array {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    if (this.#used + REGION_BYTES > this.#slab.length) {
      // Slabs are kept once made: the most connections ever open at once bound them.
      this.#slab = new Uint8Array(SLAB_BYTES);
      this.#used = 0;
    }
    const region = this.#slab.subarray(this.#used, this.#used + REGION_BYTES);
    this.#used += REGION_BYTES;
    return region;
  }

  /** @param region A region from {@linkcode take} with no read pending into it. */
  give(region: Uint8Array): void {
    this.#free.push(region);
  }
}

/** A slab of the write arena and the writes still reading from it. */
export interface WriteSlab {
  readonly bytes: Uint8Array;
  used: number;
  writing: number;
}

/**
 * Copies replies into slabs that are reused once no write reads from them: no allocation per
 * reply once the slabs are made.
 */
export class WriteArena {
  #slab: WriteSlab = newSlab();
  readonly #spare: WriteSlab[] = [];
  /** The slab the last {@linkcode copy} wrote to: pass it to {@linkcode release} after the write. */
  last: WriteSlab = this.#slab;

  /**
   * @param source The bytes to copy.
   * @param length How many of them (at most 64 KiB).
   * @returns A view of the copy, valid until {@linkcode release} of its slab.
   */
  copy(source: Uint8Array, length: number): Uint8Array {
    let slab = this.#slab;
    if (slab.writing === 0) slab.used = 0; // every write from it has ended: start it over
    else if (slab.used + length > SLAB_BYTES) {
      slab = this.#spare.pop() ?? newSlab();
      slab.used = 0;
      this.#slab = slab;
    }
    const at = slab.used;
    slab.bytes.set(length === source.length ? source : source.subarray(0, length), at);
    slab.used = at + length;
    slab.writing++;
    this.last = slab;
    return slab.bytes.subarray(at, at + length);
  }

  /** @param slab The slab a finished (or failed) write read from. */
  release(slab: WriteSlab): void {
    // A slab that is no longer the one being filled is spare once its last write ends.
    if (--slab.writing === 0 && slab !== this.#slab) this.#spare.push(slab);
  }
}

function newSlab(): WriteSlab {
  return { bytes: new Uint8Array(SLAB_BYTES), used: 0, writing: 0 };
}
