import assert from "node:assert/strict";
import { test } from "node:test";
import {
  looksLikeProxyHeader,
  PROXY_INVALID,
  PROXY_MORE,
  PROXY_V2_MAX_BODY_BYTES,
  type ProxyHeaderState,
  readProxyHeader,
} from "../server/proxy_header.ts";
import { parseIp } from "../server/limits/ip_key.ts";

const text = (s: string) => new TextEncoder().encode(s);
const fresh = (): ProxyHeaderState => ({
  proxyGot: 0,
  proxyNeed: 0,
  proxyHeld: null,
  proxyClient: null,
});
const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A v2 header: command 1 (PROXY) or 0 (LOCAL), family byte, address block, then TLV bytes. */
function v2(command: number, family: number, address: number[], tlv: number[] = []): Uint8Array {
  const body = [...address, ...tlv];
  return new Uint8Array([
    ...SIG,
    0x20 | command,
    family,
    body.length >> 8,
    body.length & 0xff,
    ...body,
  ]);
}
const V4_BLOCK = [203, 0, 113, 7, 10, 0, 0, 1, 0x30, 0x39, 0x23, 0x28]; // 203.0.113.7:12345 -> 10.0.0.1:9000
const V6_BLOCK = [
  ...[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42],
  ...new Array(16).fill(0).map((_, i) => (i === 15 ? 1 : 0)),
  0x30,
  0x39,
  0x23,
  0x28,
];

/** Feeds `bytes` in pieces of the given sizes; returns the payload after the header, or a code. */
function feed(bytes: Uint8Array, sizes: number[], state = fresh()): Uint8Array | number {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = sizes[Math.min(i, sizes.length - 1)]!;
    const chunk = bytes.subarray(at, Math.min(bytes.length, at + size));
    at += chunk.length;
    const result = readProxyHeader(state, chunk);
    if (result === PROXY_MORE) continue;
    if (result < 0) return result;
    return bytes.subarray(at - chunk.length + result);
  }
  return PROXY_MORE;
}

test("proxy header v1: TCP4 and TCP6 give the client's address, the rest is payload", () => {
  const state = fresh();
  const bytes = text("PROXY TCP4 198.51.100.9 10.0.0.1 40000 9000\r\nhi\n");
  assert.equal(readProxyHeader(state, bytes), bytes.length - 3);
  assert.deepEqual(state.proxyClient, parseIp("198.51.100.9"));
  const six = fresh();
  const header = text("PROXY TCP6 2001:db8::42 ::1 40000 9000\r\n");
  assert.equal(readProxyHeader(six, header), header.length);
  assert.deepEqual(six.proxyClient, parseIp("2001:db8::42"));
  const unknown = fresh();
  unknown.proxyClient = [1, 2, 3, 4];
  const unknownHeader = text("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n");
  assert.equal(readProxyHeader(unknown, unknownHeader), unknownHeader.length);
  assert.equal(unknown.proxyClient, null, "UNKNOWN: the balancer speaks for itself");
});

test("proxy header v2: INET, INET6, LOCAL, UNIX; TLVs skipped; payload kept", () => {
  const state = fresh();
  const header = v2(1, 0x11, V4_BLOCK, [0x04, 0x00, 0x02, 0xaa, 0xbb]);
  const bytes = new Uint8Array([...header, ...text("hi\n")]);
  assert.equal(readProxyHeader(state, bytes), header.length);
  assert.deepEqual(state.proxyClient, parseIp("203.0.113.7"));
  const six = fresh();
  assert.equal(readProxyHeader(six, v2(1, 0x21, V6_BLOCK)), 16 + 36);
  assert.deepEqual(six.proxyClient, parseIp("2001:db8::42"));
  const local = fresh();
  local.proxyClient = [1, 2, 3, 4];
  assert.equal(readProxyHeader(local, v2(0, 0x00, [])), 16);
  assert.equal(local.proxyClient, null, "LOCAL: a health check from the balancer itself");
  const unix = fresh();
  assert.equal(readProxyHeader(unix, v2(1, 0x31, new Array(216).fill(0x41))), 16 + 216);
  assert.equal(unix.proxyClient, null);
});

test("proxy header split at every byte, in every piece size, gives the same result", () => {
  const headers = [
    text("PROXY TCP4 198.51.100.9 10.0.0.1 40000 9000\r\n"),
    text("PROXY TCP6 2001:db8::42 ::1 40000 9000\r\n"),
    v2(1, 0x11, V4_BLOCK, new Array(300).fill(7)),
    v2(1, 0x21, V6_BLOCK, [1, 0, 1, 9]),
    v2(0, 0x00, [], new Array(20).fill(0)),
  ];
  for (const header of headers) {
    const bytes = new Uint8Array([...header, ...text("payload\n")]);
    const whole = fresh();
    assert.deepEqual(feed(bytes, [bytes.length], whole), text("payload\n"));
    for (const size of [1, 2, 3, 5, 7, 13, 16, 17, 50, 107]) {
      const state = fresh();
      assert.deepEqual(feed(bytes, [size], state), text("payload\n"), `pieces of ${size}`);
      assert.deepEqual(state.proxyClient, whole.proxyClient);
      assert.equal(state.proxyHeld, null, "the held copy is let go");
    }
    for (let cut = 1; cut < bytes.length; cut++) {
      const state = fresh();
      assert.deepEqual(feed(bytes, [cut, bytes.length], state), text("payload\n"), `cut at ${cut}`);
      assert.equal(state.proxyNeed, 0);
    }
  }
});

test("proxy header: malformed headers are refused, never served", () => {
  const bad = [
    text("GET / HTTP/1.1\r\n\r\n"),
    text("PROXY TCP4 198.51.100.9 10.0.0.1 40000 9000\n"), // LF without CR
    text("PROXY TCP4 198.51.100.9 10.0.0.1 40000\r\n"), // a field missing
    text("PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n"), // family and address disagree
    text("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"),
    text("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"),
    text("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"),
    text("PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n"),
    text("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"),
    text("PROXY " + "x".repeat(200) + "\r\n"), // longer than the spec's 107 bytes
    text("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
    new Uint8Array([...SIG.slice(0, 11), 0x0b, 0x21, 0x11, 0, 12, ...V4_BLOCK]), // bad signature
    new Uint8Array([...SIG, 0x11, 0x11, 0, 12, ...V4_BLOCK]), // version 1 in binary
    new Uint8Array([...SIG, 0x22, 0x11, 0, 12, ...V4_BLOCK]), // command 2
    new Uint8Array([...SIG, 0x21, 0x41, 0, 12, ...V4_BLOCK]), // family 4
    new Uint8Array([...SIG, 0x21, 0x13, 0, 12, ...V4_BLOCK]), // transport 3
    new Uint8Array([...SIG, 0x21, 0x11, 0, 8, ...V4_BLOCK.slice(0, 8)]), // too short for INET
    new Uint8Array([...SIG, 0x21, 0x21, 0, 12, ...V4_BLOCK]), // too short for INET6
    new Uint8Array([...SIG, 0x21, 0x11, 0xff, 0xff]), // longer than the cap
  ];
  for (const bytes of bad) {
    for (const size of [1, 4, bytes.length]) {
      assert.equal(feed(bytes, [size]), PROXY_INVALID, `${JSON.stringify([...bytes])} in ${size}`);
    }
  }
  const atCap = v2(1, 0x11, V4_BLOCK, new Array(PROXY_V2_MAX_BODY_BYTES - 12).fill(0));
  assert.equal(feed(atCap, [atCap.length]) instanceof Uint8Array, true, "the cap itself is fine");
  const overCap = v2(1, 0x11, V4_BLOCK, new Array(PROXY_V2_MAX_BODY_BYTES - 11).fill(0));
  assert.equal(feed(overCap, [overCap.length]), PROXY_INVALID);
});

test("proxy header: a truncated header waits for more and holds at most 108 bytes", () => {
  for (
    const header of [
      text("PROXY TCP4 198.51.100.9 10.0.0.1 40000 9000\r\n"),
      v2(1, 0x21, V6_BLOCK, new Array(1000).fill(1)),
    ]
  ) {
    for (let cut = 1; cut < header.length; cut++) {
      const state = fresh();
      assert.equal(feed(header.subarray(0, cut), [3]), PROXY_MORE, `cut at ${cut}`);
      readProxyHeader(state, header.subarray(0, cut));
      assert.ok((state.proxyHeld?.length ?? 0) <= 108);
    }
  }
});

test("proxy header: 20000 random and mutated inputs never throw and never read past a cap", () => {
  let seed = 16;
  const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 0x1000000;
  const valid = [
    text("PROXY TCP4 198.51.100.9 10.0.0.1 40000 9000\r\n"),
    v2(1, 0x11, V4_BLOCK, [1, 0, 1, 9]),
    v2(1, 0x21, V6_BLOCK),
  ];
  for (let round = 0; round < 20000; round++) {
    const base = valid[round % valid.length]!;
    let bytes: Uint8Array;
    if (round % 4 === 0) {
      bytes = new Uint8Array(Math.floor(random() * 200));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
      if (bytes.length > 0 && random() < 0.5) bytes[0] = random() < 0.5 ? 0x50 : 0x0d;
    } else {
      bytes = base.slice();
      const flips = 1 + Math.floor(random() * 3);
      for (let i = 0; i < flips; i++) {
        bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      }
      bytes = bytes.subarray(0, Math.floor(random() * (bytes.length + 1)));
    }
    const size = 1 + Math.floor(random() * 20);
    const state = fresh();
    const result = feed(bytes, [size], state);
    if (result instanceof Uint8Array) {
      assert.ok(bytes.length - result.length <= 16 + PROXY_V2_MAX_BODY_BYTES);
    } else assert.ok(result === PROXY_MORE || result === PROXY_INVALID);
    assert.ok((state.proxyHeld?.length ?? 0) <= 108);
  }
});

test("proxy header sniff: a direct client's first read that starts like a header is caught", () => {
  assert.equal(looksLikeProxyHeader(text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")), true);
  assert.equal(looksLikeProxyHeader(v2(1, 0x11, V4_BLOCK)), true);
  assert.equal(looksLikeProxyHeader(text("PROXY")), false, "too short to tell");
  assert.equal(looksLikeProxyHeader(text("hello\n")), false);
  assert.equal(looksLikeProxyHeader(text("\r\n\r\nabc")), false);
});
