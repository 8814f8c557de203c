/**
 * Parses the hold workload's address lists: `127.0.0.1`, `127.0.0.1,127.0.0.2` or a block
 * `127.0.1.0/24` (its network and broadcast addresses left out), or any mix, in order.
 *
 * @module
 */

import { isIP } from "node:net";
import { ConfigError } from "../server/common/config_error.ts";

/** The most addresses one list may expand to (a /16). */
export const MAX_LIST_ADDRESSES = 65536;

function ipv4ToNumber(address: string): number {
  return address.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/**
 * Expands an address list.
 *
 * @param flag The flag it came from, for errors.
 * @param text What was typed.
 * @returns The addresses, in order, without duplicates.
 * @throws {ConfigError} For an entry that is neither an address nor an IPv4 block of at most
 *   {@linkcode MAX_LIST_ADDRESSES} addresses.
 *
 * @example
 * ```ts
 * parseAddressList("source", "127.0.1.0/30"); // ["127.0.1.1", "127.0.1.2"]
 * ```
 */
export function parseAddressList(flag: string, text: string): string[] {
  const out = new Set<string>();
  for (const raw of text.split(",")) {
    const entry = raw.trim();
    const block = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(entry);
    if (block !== null && isIP(block[1]!) === 4 && Number(block[2]) <= 32) {
      const prefix = Number(block[2]);
      const size = 2 ** (32 - prefix);
      if (size > MAX_LIST_ADDRESSES) {
        throw new ConfigError(
          flag,
          `'${flag}' block ${entry} holds ${size} addresses, more than ${MAX_LIST_ADDRESSES}: use a /16 or smaller`,
        );
      }
      const base = ipv4ToNumber(block[1]!) - (ipv4ToNumber(block[1]!) % size);
      // A block's first and last addresses are its network and broadcast addresses, except in
      // the /31 and /32 that have no room for them.
      const skip = prefix <= 30 ? 1 : 0;
      for (let i = skip; i < size - skip; i++) out.add(numberToIpv4(base + i));
      continue;
    }
    if (isIP(entry) === 0) {
      throw new ConfigError(
        flag,
        `'${flag}' must be addresses or IPv4 blocks separated by commas, e.g. 127.0.0.1 or 127.0.1.0/24: got ${
          JSON.stringify(entry)
        }`,
      );
    }
    out.add(entry);
  }
  return [...out];
}
