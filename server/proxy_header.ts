/**
 * The PROXY protocol header (HAProxy's spec, versions 1 and 2) that a load balancer sends before
 * its client's bytes, read incrementally: a header split over any number of reads, the v2 TLV
 * section skipped by counting (never buffered), and hard caps on what is held.
 *
 * Pure: bytes in, the client's address out, state on the caller's object. A header that arrives in
 * one read (the usual case: HAProxy and nginx write it in one segment) allocates nothing beyond the
 * address's words; only a header cut short by a read is copied into a 108-byte buffer until it is
 * whole enough to decide.
 *
 * @module
 */

import type { IpWords } from "./limits/ip_key.ts";
import { parseIp } from "./limits/ip_key.ts";

/** More bytes are needed before the header ends. */
export const PROXY_MORE = -1;
/** Not a valid header: the connection must be closed. */
export const PROXY_INVALID = -2;

/** A v1 header's longest form, `\r\n` included (the spec's own bound). */
export const PROXY_V1_MAX_BYTES = 107;
/**
 * The longest v2 address-and-TLV section accepted. The spec allows 65535; balancers send the
 * addresses (at most 216 bytes, AF_UNIX) and a few TLVs, so anything longer is refused rather than
 * skipped for a peer that only claims to be a balancer.
 */
export const PROXY_V2_MAX_BODY_BYTES = 4096;
/** What is held for a header cut short: enough for a whole v1 line or a v2 IPv6 address block. */
const HOLD_BYTES = 108;

const V1_PREFIX = new Uint8Array([0x50, 0x52, 0x4f, 0x58, 0x59, 0x20]); // "PROXY "
/** The v2 signature: `\r\n\r\n\0\r\nQUIT\n`. */
const V2_SIGNATURE = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);

/** The parse state a connection keeps; all fields start at 0 / null. */
export interface ProxyHeaderState {
  /** Header bytes seen so far (held or skipped). */
  proxyGot: number;
  /** The header's whole length once known and longer than what was seen; 0 otherwise. */
  proxyNeed: number;
  /** The start of a header cut short by a read, while it is too short to decide. */
  proxyHeld: Uint8Array | null;
  /**
   * The client's address from the header; null for `LOCAL` (v2 health checks), `UNKNOWN` (v1)
   * and address families without one (AF_UNIX, AF_UNSPEC): the balancer speaks for itself.
   */
  proxyClient: IpWords | null;
}

/**
 * Feeds one read to the parser.
 *
 * @param state The connection's parse state.
 * @param chunk The bytes just read.
 * @returns How many bytes at the start of `chunk` were header (the rest is the client's data),
 *   once the header has ended; {@linkcode PROXY_MORE} while it has not; {@linkcode PROXY_INVALID}
 *   for bytes that are not a valid header.
 */
export function readProxyHeader(state: ProxyHeaderState, chunk: Uint8Array): number {
  if (state.proxyNeed > 0) {
    // Decided already; the rest of a v2 TLV section is skipped by counting.
    const left = state.proxyNeed - state.proxyGot;
    if (chunk.length < left) {
      state.proxyGot += chunk.length;
      return PROXY_MORE;
    }
    state.proxyNeed = 0;
    return left;
  }
  const held = state.proxyHeld;
  if (held === null) {
    const total = decide(chunk, chunk.length, state);
    if (total === PROXY_INVALID) return PROXY_INVALID;
    if (total === PROXY_MORE) {
      const hold = new Uint8Array(HOLD_BYTES);
      hold.set(chunk); // decide() never asks for more once HOLD_BYTES are there
      state.proxyHeld = hold;
      state.proxyGot = chunk.length;
      return PROXY_MORE;
    }
    if (total <= chunk.length) return total;
    state.proxyNeed = total;
    state.proxyGot = chunk.length;
    return PROXY_MORE;
  }
  const before = state.proxyGot;
  const copied = Math.min(chunk.length, HOLD_BYTES - before);
  held.set(chunk.subarray(0, copied), before);
  const total = decide(held, before + copied, state);
  if (total === PROXY_INVALID) return PROXY_INVALID;
  if (total === PROXY_MORE) {
    state.proxyGot = before + copied;
    return PROXY_MORE;
  }
  state.proxyHeld = null;
  if (total - before <= chunk.length) return total - before;
  state.proxyNeed = total;
  state.proxyGot = before + chunk.length;
  return PROXY_MORE;
}

/**
 * Whether a first read from a peer that is not a trusted balancer starts like a PROXY header, so
 * that a header from anyone else is refused rather than served as data. Only the first read is
 * looked at; one shorter than 6 bytes is not taken for a header.
 *
 * @param chunk The connection's first read.
 * @returns Whether it starts with `PROXY ` or the v2 signature's first 6 bytes.
 */
export function looksLikeProxyHeader(chunk: Uint8Array): boolean {
  if (chunk.length < 6) return false;
  const signature = chunk[0] === 0x50 ? V1_PREFIX : V2_SIGNATURE;
  for (let i = 0; i < 6; i++) if (chunk[i] !== signature[i]) return false;
  return true;
}

/**
 * Reads as much of a header as `length` bytes allow.
 *
 * @returns The header's total length (the address is set on `state`), PROXY_MORE, or
 *   PROXY_INVALID.
 */
function decide(bytes: Uint8Array, length: number, state: ProxyHeaderState): number {
  if (length === 0) return PROXY_MORE;
  const first = bytes[0];
  const signature = first === 0x50 ? V1_PREFIX : first === 0x0d ? V2_SIGNATURE : null;
  if (signature === null) return PROXY_INVALID;
  const check = Math.min(length, signature.length);
  for (let i = 0; i < check; i++) if (bytes[i] !== signature[i]) return PROXY_INVALID;
  return signature === V1_PREFIX ? decideV1(bytes, length, state) : decideV2(bytes, length, state);
}

function decideV1(bytes: Uint8Array, length: number, state: ProxyHeaderState): number {
  const scan = Math.min(length, PROXY_V1_MAX_BYTES);
  let end = -1;
  for (let i = V1_PREFIX.length; i < scan; i++) {
    const byte = bytes[i]!;
    if (byte === 0x0a) {
      end = i;
      break;
    }
    // Printable ASCII only (and the \r before \n): the spec's header is text.
    if ((byte < 0x20 || byte > 0x7e) && byte !== 0x0d) return PROXY_INVALID;
  }
  if (end === -1) return length >= PROXY_V1_MAX_BYTES ? PROXY_INVALID : PROXY_MORE;
  if (bytes[end - 1] !== 0x0d) return PROXY_INVALID;
  // v1 is the older, rarer form; one short string per header keeps this simple.
  let text = "";
  for (let i = V1_PREFIX.length; i < end - 1; i++) text += String.fromCharCode(bytes[i]!);
  const fields = text.split(" ");
  if (fields[0] === "UNKNOWN") {
    state.proxyClient = null;
    return end + 1;
  }
  if (fields.length !== 5) return PROXY_INVALID;
  const [family, source, destination, sourcePort, destinationPort] = fields as [
    string,
    string,
    string,
    string,
    string,
  ];
  const v6 = family === "TCP6";
  if (!v6 && family !== "TCP4") return PROXY_INVALID;
  if (source.includes(":") !== v6 || destination.includes(":") !== v6) return PROXY_INVALID;
  const client = parseIp(source);
  if (client === null || parseIp(destination) === null) return PROXY_INVALID;
  if (!isPort(sourcePort) || !isPort(destinationPort)) return PROXY_INVALID;
  state.proxyClient = client;
  return end + 1;
}

function isPort(text: string): boolean {
  // The spec forbids leading zeros; "0" itself is a port.
  return /^(0|[1-9]\d{0,4})$/.test(text) && Number(text) <= 65535;
}

const V2_FIXED_BYTES = 16;

function decideV2(bytes: Uint8Array, length: number, state: ProxyHeaderState): number {
  if (length < V2_FIXED_BYTES) return PROXY_MORE;
  const versionCommand = bytes[12]!;
  if (versionCommand >> 4 !== 2) return PROXY_INVALID;
  const command = versionCommand & 0x0f;
  if (command > 1) return PROXY_INVALID;
  const family = bytes[13]!;
  const body = (bytes[14]! << 8) | bytes[15]!;
  if (body > PROXY_V2_MAX_BODY_BYTES) return PROXY_INVALID;
  const total = V2_FIXED_BYTES + body;
  if (command === 0) {
    // LOCAL: the balancer's own connection (a health check); whatever follows is skipped.
    state.proxyClient = null;
    return total;
  }
  const addressFamily = family >> 4;
  const transport = family & 0x0f;
  if (transport > 2 || addressFamily > 3) return PROXY_INVALID;
  if (addressFamily === 0 || addressFamily === 3) {
    // AF_UNSPEC or AF_UNIX: no address to count the client by.
    state.proxyClient = null;
    return total;
  }
  const addressBytes = addressFamily === 1 ? 12 : 36;
  if (body < addressBytes) return PROXY_INVALID;
  if (length < V2_FIXED_BYTES + addressBytes) return PROXY_MORE;
  const at = V2_FIXED_BYTES;
  state.proxyClient = addressFamily === 1
    ? [0, 0, 0xffff, word(bytes, at)]
    : [word(bytes, at), word(bytes, at + 4), word(bytes, at + 8), word(bytes, at + 12)];
  return total;
}

function word(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>>
    0;
}
