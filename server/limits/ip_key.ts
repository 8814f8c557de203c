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
