/**
 * Per-client-address figures shared by every thread of a process: concurrent connections and a
 * token bucket for the new-connection rate.
 *
 * The kernel spreads one address's connections over all threads, so a per-thread count would
 * multiply every limit by the thread count; this table lives in shared memory instead. It has a
 * fixed number of slots (64 bytes each) found by open addressing, so a flood from many or spoofed
 * addresses cannot grow memory: an entry with no open connection is reused once it has been quiet
 * for {@linkcode EXPIRE_MS}, and when no slot is free the address goes untracked (counted), held
 * only by the global connection cap. Each slot has a spin lock held for a few loads and stores.
 *
 * @module
 */

import type { IpWords } from "./ip_key.ts";

/** Bytes one tracked address costs. */
export const BYTES_PER_ADDRESS = 64;
/** How long an address with no connection is remembered (its rate-limit bucket with it). */
export const EXPIRE_MS = 10_000;
/** Slots probed from an address's home slot before it counts as untracked. */
const PROBE = 16;

// Slot layout: Int32 words 0-7, Float64 words 4-6 (bytes 32-55).
const LOCK = 0;
const USED = 1; // 0 free, 1 used
const KEY = 2; // 4 words
const ACTIVE = 6;
const TOKENS = 4; // Float64 index within the slot
const REFILLED = 5; // Float64: ms timestamp of the last refill
const SEEN = 6; // Float64: ms timestamp of the last connection

/** Why {@linkcode AddressTable.admit} refused. */
export const ADMITTED = 0;
/** The address has its most concurrent connections. */
export const OVER_ADDRESS_CAP = 1;
/** The address opens connections faster than its rate. */
export const OVER_RATE = 2;
/** No slot was free; admitted without per-address limits. */
export const UNTRACKED = 3;

/** Per-address limits; 0 turns one off. */
export interface AddressLimits {
  maxPerAddress: number;
  /** New connections per second. */
  rate: number;
  /** Bucket size: connections allowed at once after a quiet spell. */
  burst: number;
}

/** A view of a process's address table; each thread makes its own over the same buffer. */
export class AddressTable {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
  readonly #ints: Int32Array;
  readonly #floats: Float64Array;
  /** Insert locks, one per home slot, so two threads never add one address twice. */
  readonly #inserting: Int32Array;
  /**
   * The slot of the address {@linkcode admit} last counted a connection for (this view's, so
   * this thread's), for {@linkcode releaseSlot}: a connection keeps this number rather than its
   * address.
   */
  admittedSlot = -1;

  /**
   * @param buffer From {@linkcode AddressTable.create}.
   */
  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.capacity = buffer.byteLength / (BYTES_PER_ADDRESS + 4);
    this.#ints = new Int32Array(buffer, 0, this.capacity * 16);
    this.#floats = new Float64Array(buffer, 0, this.capacity * 8);
    this.#inserting = new Int32Array(buffer, this.capacity * BYTES_PER_ADDRESS, this.capacity);
  }

  /**
   * Makes a table in fresh shared memory.
   *
   * @param capacity How many addresses it can track (a power of two).
   * @returns The table.
   */
  static create(capacity: number): AddressTable {
    return new AddressTable(new SharedArrayBuffer(capacity * (BYTES_PER_ADDRESS + 4)));
  }

  /**
   * Counts a new connection from `address` if its limits allow it.
   *
   * @param address The client's address.
   * @param limits The limits in force.
   * @param now The time in ms.
   * @returns {@linkcode ADMITTED}, {@linkcode UNTRACKED}, or why it was refused.
   */
  admit(address: IpWords, limits: AddressLimits, now: number): number {
    for (;;) {
      const slot = this.#find(address, now, true);
      if (slot < 0) return UNTRACKED;
      const base = slot * 16;
      this.#lock(base);
      // The slot may have been given to another address between finding and locking it.
      const verdict = this.#holds(base, address) ? this.#count(slot, limits, now) : -1;
      Atomics.store(this.#ints, base + LOCK, 0);
      if (verdict === ADMITTED) this.admittedSlot = slot;
      if (verdict >= 0) return verdict;
    }
  }

  // Under the slot's lock.
  #count(slot: number, limits: AddressLimits, now: number): number {
    const ints = this.#ints;
    const floats = this.#floats;
    const base = slot * 16;
    const fbase = slot * 8;
    floats[fbase + SEEN] = now;
    if (limits.maxPerAddress > 0 && ints[base + ACTIVE]! >= limits.maxPerAddress) {
      return OVER_ADDRESS_CAP;
    }
    if (limits.rate > 0) {
      const burst = Math.max(1, limits.burst);
      // Threads' clocks differ by up to a tick: the refill time only ever moves forward, or a
      // thread with a late clock would hand the same interval's tokens out twice.
      const refilled = floats[fbase + REFILLED]!;
      const elapsed = Math.max(0, now - refilled);
      const tokens = Math.min(burst, floats[fbase + TOKENS]! + (elapsed * limits.rate) / 1000);
      floats[fbase + REFILLED] = Math.max(refilled, now);
      if (tokens < 1) {
        floats[fbase + TOKENS] = tokens;
        return OVER_RATE;
      }
      floats[fbase + TOKENS] = tokens - 1;
    }
    ints[base + ACTIVE]!++;
    return ADMITTED;
  }

  /**
   * Counts a connection from `address` as closed.
   *
   * @param address The address it was admitted for.
   * @param now The time in ms.
   */
  release(address: IpWords, now: number): void {
    const slot = this.#find(address, now, false);
    if (slot >= 0) this.releaseSlot(slot, now);
  }

  /**
   * Counts a connection as closed by the slot it was admitted in ({@linkcode admittedSlot}). The
   * slot still holds its address: a slot is given to another address only once its count is 0,
   * and this connection is in it.
   *
   * @param slot The slot its address was counted in.
   * @param now The time in ms.
   */
  releaseSlot(slot: number, now: number): void {
    const base = slot * 16;
    this.#lock(base);
    if (this.#ints[base + USED] === 1 && this.#ints[base + ACTIVE]! > 0) {
      this.#ints[base + ACTIVE]!--;
      this.#floats[slot * 8 + SEEN] = now;
    }
    Atomics.store(this.#ints, base + LOCK, 0);
  }

  /** Concurrent connections counted for `address` (0 when untracked). */
  active(address: IpWords): number {
    const slot = this.#find(address, 0, false);
    return slot < 0 ? 0 : this.#ints[slot * 16 + ACTIVE]!;
  }

  /** Addresses tracked now. */
  get size(): number {
    let used = 0;
    for (let slot = 0; slot < this.capacity; slot++) used += this.#ints[slot * 16 + USED]!;
    return used;
  }

  #holds(base: number, address: IpWords): boolean {
    const ints = this.#ints;
    return ints[base + USED] === 1 && ints[base + KEY] === (address[0] | 0) &&
      ints[base + KEY + 1] === (address[1] | 0) && ints[base + KEY + 2] === (address[2] | 0) &&
      ints[base + KEY + 3] === (address[3] | 0);
  }

  #find(address: IpWords, now: number, insert: boolean): number {
    const home = this.#home(address);
    for (let i = 0; i < PROBE; i++) {
      const slot = (home + i) & (this.capacity - 1);
      if (this.#holds(slot * 16, address)) return slot;
    }
    if (!insert) return -1;
    // Not there: add it under the home slot's insert lock, so a racing thread adding the same
    // address finds this one instead of taking a second slot.
    while (Atomics.compareExchange(this.#inserting, home, 0, 1) !== 0) { /* held briefly */ }
    try {
      for (let i = 0; i < PROBE; i++) {
        const slot = (home + i) & (this.capacity - 1);
        if (this.#holds(slot * 16, address)) return slot;
      }
      for (let i = 0; i < PROBE; i++) {
        const slot = (home + i) & (this.capacity - 1);
        const base = slot * 16;
        this.#lock(base);
        const ints = this.#ints;
        const free = ints[base + USED] === 0 ||
          (ints[base + ACTIVE] === 0 && now - this.#floats[slot * 8 + SEEN]! > EXPIRE_MS);
        if (free) {
          ints[base + KEY] = address[0] | 0;
          ints[base + KEY + 1] = address[1] | 0;
          ints[base + KEY + 2] = address[2] | 0;
          ints[base + KEY + 3] = address[3] | 0;
          ints[base + ACTIVE] = 0;
          this.#floats[slot * 8 + TOKENS] = Number.MAX_VALUE; // a new address starts with a full bucket
          this.#floats[slot * 8 + REFILLED] = now;
          this.#floats[slot * 8 + SEEN] = now;
          ints[base + USED] = 1;
        }
        Atomics.store(ints, base + LOCK, 0);
        if (free) return slot;
      }
      return -1;
    } finally {
      Atomics.store(this.#inserting, home, 0);
    }
  }

  #home(address: IpWords): number {
    let hash = 0x811c9dc5;
    for (let i = 0; i < 4; i++) hash = Math.imul(hash ^ address[i]!, 0x01000193);
    return (hash ^ (hash >>> 15)) & (this.capacity - 1);
  }

  #lock(base: number): void {
    // Held for a handful of loads and stores, never across I/O: spinning is cheaper than waiting.
    while (Atomics.compareExchange(this.#ints, base + LOCK, 0, 1) !== 0) { /* spin */ }
  }
}
