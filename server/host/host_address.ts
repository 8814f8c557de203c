/**
 * Whether a `host` is something a listener can be given: an IPv4 address, an IPv6 address or a
 * host name. Checked with the rest of the configuration, so `--host 999.1.1.1` is a mistake in
 * the command line (exit 2) rather than a listener that fails once children are started.
 *
 * @module
 */

const OCTET = /^(?:0|[1-9]\d{0,2})$/;
const LABEL = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

function isIpv4(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 && parts.every((p) => OCTET.test(p) && Number(p) <= 255);
}

function isIpv6(text: string): boolean {
  let groups = text;
  // An IPv4 tail (::ffff:127.0.0.1) counts as two groups.
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    if (!isIpv4(tail)) return false;
    groups = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = groups.split("::");
  if (halves.length > 2) return false;
  const hex = (part: string) => part === "" ? [] : part.split(":");
  const parts = halves.flatMap(hex);
  if (!parts.every((p) => /^[0-9a-fA-F]{1,4}$/.test(p))) return false;
  return halves.length === 2 ? parts.length <= 7 : parts.length === 8;
}

/**
 * Whether `text` is an IPv4 address, an IPv6 address (without brackets) or a host name.
 *
 * @param text What was given as `host`.
 * @returns True when a listener could be asked to bind it.
 */
export function isHostAddress(text: string): boolean {
  if (text.includes(":")) return isIpv6(text);
  // All digits and dots: an IPv4 address or nothing (999.1.1.1 is not a host name).
  if (/^[\d.]+$/.test(text)) return isIpv4(text);
  const name = text.endsWith(".") ? text.slice(0, -1) : text;
  return name.length > 0 && name.length <= 253 && name.split(".").every((l) => LABEL.test(l));
}
