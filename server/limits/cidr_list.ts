/**
 * Address ranges in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or a bare address), for the
 * allow and deny lists.
 *
 * @module
 */

import { describe } from "../config.ts";
import { type IpWords, parseIp } from "./ip_key.ts";

interface Range {
  words: IpWords;
  /** Prefix length in the 128-bit (IPv4-mapped) space. */
  bits: number;
}

/** A list of ranges to test addresses against. */
export class CidrList {
  readonly #ranges: Range[];
  /** The ranges as given, for logs and the configuration. */
  readonly source: readonly string[];

  /**
   * @param ranges CIDR texts.
   * @param key The configuration key, for errors.
   * @throws {RangeError} Naming the key and the range that is not valid.
   */
  constructor(ranges: readonly string[], key = "ranges") {
    this.source = ranges;
    this.#ranges = ranges.map((text) => parseRange(text, key));
  }

  /** Whether the list has no range. */
  get empty(): boolean {
    return this.#ranges.length === 0;
  }

  /**
   * Whether `address` lies in any range.
   *
   * @param address Words from `parseIp`.
   */
  contains(address: IpWords): boolean {
    for (const range of this.#ranges) if (inRange(address, range)) return true;
    return false;
  }
}

function parseRange(text: string, key: string): Range {
  const invalid = () =>
    new RangeError(`'${key}' must hold CIDR ranges such as 10.0.0.0/8: got ${describe(text)}`);
  if (typeof text !== "string") throw invalid();
  const [address, prefix, extra] = text.split("/");
  if (extra !== undefined || address === undefined) throw invalid();
  const words = parseIp(address);
  if (words === null) throw invalid();
  const isV4 = !address.includes(":");
  const max = isV4 ? 32 : 128;
  if (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) throw invalid();
  const length = prefix === undefined ? max : Number(prefix);
  if (length > max) throw invalid();
  return { words, bits: isV4 ? 96 + length : length };
}

function inRange(address: IpWords, range: Range): boolean {
  let bits = range.bits;
  for (let i = 0; i < 4 && bits > 0; i++) {
    const take = Math.min(32, bits);
    const mask = take === 32 ? 0xffffffff : ~(0xffffffff >>> take) >>> 0;
    if (((address[i]! ^ range.words[i]!) & mask) !== 0) return false;
    bits -= take;
  }
  return true;
}
