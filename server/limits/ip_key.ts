/**
 * Client addresses as fixed-size keys: four 32-bit words, IPv4 as an IPv4-mapped IPv6 address
 * (`::ffff:a.b.c.d`), so one table and one CIDR matcher serve both families.
 *
 * @module
 */

/** An address as four unsigned 32-bit words, most significant first. */
export type IpWords = [number, number, number, number];

/**
 * Parses an IPv4 or IPv6 address as the runtimes report it (`1.2.3.4`, `::1`, `::ffff:1.2.3.4`).
 *
 * @param address The address text.
 * @returns Its words, or `null` when it is not an address.
 */
export function parseIp(address: string): IpWords | null {
  if (address.includes(":")) return parseIpv6(address);
  const v4 = parseIpv4(address);
  return v4 === null ? null : [0, 0, 0xffff, v4];
}

/**
 * Reads an address as {@linkcode parseIp} does, into words the caller reuses: IPv4 (and IPv6's
 * `::ffff:a.b.c.d`) by a scan of its characters, with no string or array made, as each accepted
 * connection's address is read. Other IPv6 forms go through {@linkcode parseIp}.
 *
 * @param address The address text.
 * @param into Where its words go; left as it was when the text is not an address.
 * @returns Whether it was an address.
 */
export function readIp(address: string, into: IpWords): boolean {
  let start = 0;
  if (address.length > 7 && address.charCodeAt(0) === COLON) {
    if (!address.startsWith("::ffff:") || address.indexOf(".", 7) === -1) {
      return copyWords(parseIp(address), into);
    }
    start = 7;
  }
  const v4 = scanIpv4(address, start);
  if (v4 < 0) {
    // Not plain a.b.c.d after the prefix (a zone, or `::ffff:0:a.b.c.d`): parseIp decides, so
    // the allow and deny lists never see a different address than they would from parseIp.
    return start !== 0 || address.includes(":") ? copyWords(parseIp(address), into) : false;
  }
  into[0] = 0;
  into[1] = 0;
  into[2] = 0xffff;
  into[3] = v4;
  return true;
}

const COLON = 0x3a;
const DOT = 0x2e;
const ZERO = 0x30;

function copyWords(words: IpWords | null, into: IpWords): boolean {
  if (words === null) return false;
  into[0] = words[0];
  into[1] = words[1];
  into[2] = words[2];
  into[3] = words[3];
  return true;
}

/** `a.b.c.d` from `start` to the end, each part one to three digits up to 255; -1 when not. */
function scanIpv4(text: string, start: number): number {
  let value = 0;
  let parts = 0;
  let octet = 0;
  let digits = 0;
  for (let i = start; i <= text.length; i++) {
    const code = i === text.length ? DOT : text.charCodeAt(i);
    if (code === DOT) {
      if (digits === 0 || octet > 255 || ++parts > 4) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else {
      const digit = code - ZERO;
      if (digit < 0 || digit > 9 || ++digits > 3) return -1;
      octet = octet * 10 + digit;
    }
  }
  return parts === 4 ? value >>> 0 : -1;
}

function parseIpv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    value = value * 256 + octet;
  }
  return value >>> 0;
}

function parseIpv6(text: string): IpWords | null {
  const zone = text.indexOf("%");
  if (zone !== -1) text = text.slice(0, zone);
  let tail: number[] = [];
  // A trailing dotted IPv4 part stands for the last two groups.
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    const v4 = parseIpv4(text.slice(lastColon + 1));
    if (v4 === null) return null;
    tail = [v4 >>> 16, v4 & 0xffff];
    text = text.slice(0, lastColon + 1) + "0:0";
    tail.length = 2;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] === "" ? [] : halves[0]!.split(":");
  const rest = halves.length === 2 ? (halves[1] === "" ? [] : halves[1]!.split(":")) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  const values: number[] = [];
  for (const group of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return null;
    values.push(Number.parseInt(group, 16));
  }
  if (tail.length === 2) {
    values[6] = tail[0]!;
    values[7] = tail[1]!;
  }
  return [
    ((values[0]! << 16) | values[1]!) >>> 0,
    ((values[2]! << 16) | values[3]!) >>> 0,
    ((values[4]! << 16) | values[5]!) >>> 0,
    ((values[6]! << 16) | values[7]!) >>> 0,
  ];
}
