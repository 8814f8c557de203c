/**
 * Address ranges in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or a bare address), for the
 * allow and deny lists, matched by `node:net`'s `BlockList`.
 *
 * Every range and every address is handed to the `BlockList` as IPv6, IPv4 as IPv4-mapped
 * (`::ffff:a.b.c.d`, prefix + 96): the same single 128-bit space as the address table's keys
 * (see ip_key.ts), so `::/0` covers IPv4 clients too and a client on a dual-stack listener
 * (`::ffff:127.0.0.1`) matches `127.0.0.0/8`. Asking `BlockList` to relate the two families
 * itself is not the same on every runtime: on Deno 2.9.6 an IPv6 `::/0` does not match an
 * address checked as IPv4 (Bun 1.4.5 and Node say it does), and Deno does not match
 * `fe80::1%eth0` against `fe80::/10`. Addresses are also validated here (with ip_key.ts) before
 * `BlockList` sees them: Bun 1.4.5 accepts `1.2.3` as an IPv4 address.
 *
 * @module
 */

import type { BlockList } from "node:net";
import { describe } from "../common/describe.ts";
import { nodeNet } from "../common/lazy_builtins.ts";
import { type IpWords, parseIp } from "./ip_key.ts";

/** A list of ranges to test addresses against. */
export class CidrList {
  /** `null` for an empty list: most are, and `node:net` is then never loaded. */
  readonly #blocks: BlockList | null;
  /** The ranges as given, for logs and the configuration. */
  readonly source: readonly string[];

  /**
   * @param ranges CIDR texts.
   * @param key The configuration key, for errors.
   * @throws {RangeError} Naming the key and the range that is not valid, and why.
   */
  constructor(ranges: readonly string[], key = "ranges") {
    this.source = ranges;
    const parsed = ranges.map((text) => parseRange(text, key));
    const blocks = parsed.length === 0 ? null : new (nodeNet().BlockList)();
    for (const { words, bits } of parsed) blocks!.addSubnet(ipv6Text(words), bits, "ipv6");
    this.#blocks = blocks;
  }

  /** Whether the list has no range. */
  get empty(): boolean {
    return this.#blocks === null;
  }

  /**
   * Whether `address` lies in any range.
   *
   * @param address Words from `parseIp`.
   */
  contains(address: IpWords): boolean {
    // The default lists are empty, and a `BlockList.check` costs about 5 µs on Deno 2.9.6 even
    // then (0.3 µs on Bun 1.4.5; see bench/cidr_list_bench.ts): an empty list answers at once.
    if (this.#blocks === null) return false;
    return this.#blocks.check(ipv6Text(address), "ipv6");
  }
}

/** Eight groups of hex, the one IPv6 form every runtime's `BlockList` reads alike. */
function ipv6Text(words: IpWords): string {
  const [a, b, c, d] = words;
  return `${(a >>> 16).toString(16)}:${(a & 0xffff).toString(16)}:` +
    `${(b >>> 16).toString(16)}:${(b & 0xffff).toString(16)}:` +
    `${(c >>> 16).toString(16)}:${(c & 0xffff).toString(16)}:` +
    `${(d >>> 16).toString(16)}:${(d & 0xffff).toString(16)}`;
}

function parseRange(text: string, key: string): { words: IpWords; bits: number } {
  const invalid = (why: string) =>
    new RangeError(
      `'${key}' must hold CIDR ranges such as 10.0.0.0/8 or 2001:db8::/32: got ${
        describe(text)
      } (${why})`,
    );
  if (typeof text !== "string") throw invalid("not a string");
  const [address, prefix, extra] = text.split("/");
  if (extra !== undefined || address === undefined) throw invalid("more than one '/'");
  const words = parseIp(address);
  if (words === null) throw invalid(`${describe(address)} is not an IPv4 or IPv6 address`);
  const isV4 = !address.includes(":");
  const max = isV4 ? 32 : 128;
  if (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) {
    throw invalid(`the prefix length must be a number from 0 to ${max}`);
  }
  const length = prefix === undefined ? max : Number(prefix);
  if (length > max) {
    throw invalid(`an ${isV4 ? "IPv4" : "IPv6"} prefix is at most ${max} bits`);
  }
  return { words, bits: isV4 ? 96 + length : length };
}
