import assert from "node:assert/strict";
import { test } from "node:test";
import {
  AddressTable,
  ADMITTED,
  EXPIRE_MS,
  OVER_ADDRESS_CAP,
  OVER_RATE,
  UNTRACKED,
} from "../server/limits/address_table.ts";
import { CidrList } from "../server/limits/cidr_list.ts";
import { type IpWords, parseIp, readIp } from "../server/limits/ip_key.ts";
import {
  awaitsFirstBytes,
  FULL_SWEEP_MAX_MS,
  fullSweepEveryMs,
  overstayed,
  SWEEP_EVERY_MS,
} from "../server/limits/timeouts.ts";
import { PROXY_AWAIT } from "../server/limits/connection_gate.ts";
import { Connection, ConnectionExtra } from "../server/numbering/connection.ts";
import { defaultConfig, resolveConfig } from "../server/config/resolve_config.ts";
import { Stat } from "../server/threads/thread_stats.ts";

test("ip keys: IPv4, IPv6, IPv4-mapped and zones parse to the same 128-bit space", () => {
  assert.deepEqual(parseIp("1.2.3.4"), [0, 0, 0xffff, 0x01020304]);
  assert.deepEqual(parseIp("::ffff:1.2.3.4"), [0, 0, 0xffff, 0x01020304]);
  assert.deepEqual(parseIp("::1"), [0, 0, 0, 1]);
  assert.deepEqual(parseIp("2001:db8::8a2e:370:7334"), [0x20010db8, 0, 0x8a2e, 0x03707334]);
  assert.deepEqual(parseIp("fe80::1%eth0"), [0xfe800000, 0, 0, 1]);
  for (const bad of ["1.2.3", "1.2.3.256", "::1::2", "hello", "1:2:3:4:5:6:7:8:9", ""]) {
    assert.equal(parseIp(bad), null, bad);
  }
});

test("cidr lists match IPv4 and IPv6 ranges and reject bad ranges naming the key", () => {
  const list = new CidrList(["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"], "deny");
  assert.equal(list.contains(parseIp("10.200.3.4")!), true);
  assert.equal(list.contains(parseIp("11.0.0.1")!), false);
  assert.equal(list.contains(parseIp("192.168.1.7")!), true);
  assert.equal(list.contains(parseIp("192.168.1.8")!), false);
  assert.equal(list.contains(parseIp("2001:db8:ffff::1")!), true);
  assert.equal(list.contains(parseIp("2001:db9::1")!), false);
  assert.equal(new CidrList(["0.0.0.0/0"]).contains(parseIp("8.8.8.8")!), true);
  assert.throws(
    () => new CidrList(["10.0.0.0/33"], "allow"),
    /'allow' must hold CIDR ranges .* got "10.0.0.0\/33"/,
  );
  assert.throws(() => new CidrList(["nope"], "deny"), /'deny'/);
});

test("cidr lists match in one 128-bit space on every runtime: IPv4-mapped, IPv6, zones, /0, /32, /128", () => {
  const matches = (ranges: string[], address: string) =>
    new CidrList(ranges, "allow").contains(parseIp(address)!);
  // A client on a dual-stack listener is reported as ::ffff:a.b.c.d; it is still 127.0.0.1.
  assert.equal(matches(["127.0.0.0/8"], "::ffff:127.0.0.1"), true);
  assert.equal(matches(["127.0.0.0/8"], "127.0.0.1"), true);
  assert.equal(matches(["127.0.0.0/8"], "::1"), false);
  assert.equal(matches(["::ffff:127.0.0.1"], "127.0.0.1"), true);
  assert.equal(matches(["::ffff:10.0.0.0/104"], "10.9.9.9"), true);
  assert.equal(matches(["::ffff:10.0.0.0/104"], "11.0.0.1"), false);
  assert.equal(matches(["::ffff:0:0/96"], "203.0.113.9"), true);
  assert.equal(matches(["::ffff:0:0/96"], "::1"), false);
  // /0 in each family: IPv6's covers IPv4 clients too (Deno 2.9.6's BlockList alone says no).
  assert.equal(matches(["::/0"], "10.0.0.1"), true);
  assert.equal(matches(["::/0"], "2001:db8::1"), true);
  assert.equal(matches(["0.0.0.0/0"], "::ffff:8.8.8.8"), true);
  assert.equal(matches(["0.0.0.0/0"], "::1"), false);
  assert.equal(matches(["0.0.0.0/0"], "2001:db8::1"), false);
  // Whole addresses, with and without the prefix written out.
  assert.equal(matches(["192.168.1.7/32"], "192.168.1.7"), true);
  assert.equal(matches(["192.168.1.7/32"], "192.168.1.8"), false);
  assert.equal(matches(["192.168.1.7/32"], "::ffff:192.168.1.7"), true);
  assert.equal(matches(["::1/128"], "::1"), true);
  assert.equal(matches(["::1/128"], "0:0:0:0:0:0:0:1"), true);
  assert.equal(matches(["::1/128"], "::2"), false);
  assert.equal(matches(["::1"], "0.0.0.1"), false);
  // A zone is not part of the address (Deno 2.9.6's BlockList alone does not match it).
  assert.equal(matches(["fe80::/10"], "fe80::1%eth0"), true);
  // Host bits beyond the prefix are ignored, as `ip route` does.
  assert.equal(matches(["10.1.2.3/8"], "10.200.0.1"), true);
  assert.equal(matches(["2001:db8::1/32"], "2001:db8:ffff::2"), true);
  assert.equal(new CidrList([], "allow").empty, true);
  assert.equal(new CidrList([], "allow").contains(parseIp("10.0.0.1")!), false);
});

test("cidr lists reject bad ranges naming the key and the range as given", () => {
  for (const bad of ["1.2.3/8", "1.2.3", "::1/129", "10.0.0.0/x", "10.0.0.0/8/9", "nope", ""]) {
    assert.throws(
      () => new CidrList(["10.0.0.0/8", bad], "deny"),
      (error: Error) =>
        error instanceof RangeError && error.message.includes("'deny'") &&
        error.message.includes(JSON.stringify(bad)),
      bad,
    );
  }
});

test("ip keys: readIp reads into reused words exactly what parseIp reads, and leaves them on a non-address", () => {
  const texts = [
    ...["1.2.3.4", "0.0.0.0", "255.255.255.255", "01.002.3.4", "127.0.1.1", "::ffff:1.2.3.4"],
    ...["::1", "2001:db8::8a2e:370:7334", "fe80::1%eth0", "::FFFF:1.2.3.4", "1:2:3:4:5:6:1.2.3.4"],
    ...["1.2.3", "1.2.3.256", "1.2.3.4.5", "1..2.3", "1.2.3.", "0001.2.3.4", " 1.2.3.4", "a.b.c.d"],
    ...["::ffff:1.2.3.256", "::ffff:1.2.3", "::1::2", "hello", "1:2:3:4:5:6:7:8:9", ""],
    ...["::ffff:1.2.3.4%lo", "::ffff:0:1.2.3.4", "::ffff:a:1.2.3.4", "::ffff:1.2.3.4%"],
  ];
  for (let i = 0; i < 2000; i++) {
    const parts = 3 + (i % 3);
    texts.push(Array.from({ length: parts }, (_, j) => String((i * 37 + j * 101) % 300)).join("."));
  }
  const words: IpWords = [7, 7, 7, 7];
  for (const text of texts) {
    const parsed = parseIp(text);
    const before = [...words];
    assert.equal(readIp(text, words), parsed !== null, text);
    assert.deepEqual(words, parsed ?? before, text);
  }
});

test("address table releases a connection by the slot it was admitted in, never another address's", () => {
  const table = AddressTable.create(64);
  const other = new AddressTable(table.buffer);
  const a = parseIp("10.9.8.7")!;
  const limits = { maxPerAddress: 2, rate: 0, burst: 0 };
  assert.equal(table.admit(a, limits, 0), ADMITTED);
  const slot = table.admittedSlot;
  assert.equal(other.admit(a, limits, 0), ADMITTED);
  assert.equal(other.admittedSlot, slot, "one address, one slot, whichever thread admits");
  assert.equal(table.admit(a, limits, 0), OVER_ADDRESS_CAP);
  other.releaseSlot(slot, 1);
  assert.equal(table.active(a), 1);
  table.releaseSlot(slot, 2);
  table.releaseSlot(slot, 3);
  assert.equal(table.active(a), 0, "a release past 0 is ignored");
});

test("address table holds an address at its cap across views (threads) and frees on release", () => {
  const table = AddressTable.create(1024);
  const other = new AddressTable(table.buffer); // another thread's view
  const a = parseIp("127.0.0.2")!;
  const limits = { maxPerAddress: 3, rate: 0, burst: 0 };
  assert.equal(table.admit(a, limits, 0), ADMITTED);
  assert.equal(other.admit(a, limits, 0), ADMITTED);
  assert.equal(table.admit(a, limits, 0), ADMITTED);
  assert.equal(other.admit(a, limits, 0), OVER_ADDRESS_CAP, "the cap is shared, not per view");
  assert.equal(table.admit(parseIp("127.0.0.3")!, limits, 0), ADMITTED, "others unaffected");
  other.release(a, 1);
  assert.equal(table.admit(a, limits, 1), ADMITTED);
  assert.equal(table.active(a), 3);
});

test("address table rate limit is a token bucket: burst at once, then the rate", () => {
  const table = AddressTable.create(64);
  const a = parseIp("127.0.0.4")!;
  const limits = { maxPerAddress: 0, rate: 10, burst: 5 };
  let admitted = 0;
  for (let i = 0; i < 20; i++) if (table.admit(a, limits, 1000) === ADMITTED) admitted++;
  assert.equal(admitted, 5, "the burst");
  assert.equal(table.admit(a, limits, 1000), OVER_RATE);
  assert.equal(table.admit(a, limits, 1100), ADMITTED, "one token after 100 ms at 10/s");
  assert.equal(table.admit(a, limits, 1100), OVER_RATE);
});

test("address table is bounded: quiet entries are reused and a full table admits untracked", () => {
  const table = AddressTable.create(16);
  const limits = { maxPerAddress: 1, rate: 0, burst: 0 };
  let untracked = 0;
  for (let i = 0; i < 40; i++) {
    if (table.admit(parseIp(`10.0.0.${i}`)!, limits, 0) === UNTRACKED) untracked++;
  }
  assert.equal(table.size, 16, "never more entries than slots");
  assert.equal(untracked, 24);
  for (let i = 0; i < 40; i++) table.release(parseIp(`10.0.0.${i}`)!, 0);
  // After the expiry, quiet entries make room for new addresses.
  assert.equal(table.admit(parseIp("10.1.0.1")!, limits, EXPIRE_MS + 1), ADMITTED);
  assert.equal(table.size, 16);
});

test("timeouts: silent, idle, unfinished line and unread replies each close with their reason", () => {
  const config = resolveConfig(
    { firstMessageTimeoutMs: 1000, idleTimeoutMs: 5000 },
    defaultConfig(1),
  );
  const fresh = () => Object.assign(new Connection(), { openedAt: 0, lastActivityAt: 0 });
  assert.equal(overstayed(fresh(), 999, config), -1);
  assert.equal(overstayed(fresh(), 1001, config), Stat.closedFirstMessageTimeout);
  const talked = Object.assign(fresh(), { heard: true, lastActivityAt: 100 });
  assert.equal(overstayed(talked, 5000, config), -1);
  assert.equal(overstayed(talked, 5101, config), Stat.closedIdleTimeout);
  const slowloris = Object.assign(fresh(), {
    heard: true,
    lastActivityAt: 4900,
    lineStartedAt: 10,
  });
  assert.equal(overstayed(slowloris, 5011, config), Stat.closedUnfinishedLine);
  const notReading = Object.assign(fresh(), {
    heard: true,
    lastActivityAt: 4900,
    blockedSince: 20,
  });
  assert.equal(overstayed(notReading, 5021, config), Stat.closedSlowReader);
  const off = resolveConfig({ firstMessageTimeoutMs: 0, idleTimeoutMs: 0 }, defaultConfig(1));
  assert.equal(overstayed(fresh(), 1e9, off), -1, "0 turns the timeouts off");
});

test("address table rate limit holds when threads' clocks disagree by a tick", () => {
  const table = AddressTable.create(64);
  const a = parseIp("127.0.0.12")!;
  const limits = { maxPerAddress: 0, rate: 10, burst: 1 };
  let admitted = 0;
  // Two threads alternate every 10 ms, one clock 50 ms behind the other, for one second.
  for (let t = 0; t < 1000; t += 10) {
    if (table.admit(a, limits, t + 50) === ADMITTED) admitted++;
    if (table.admit(a, limits, t) === ADMITTED) admitted++;
  }
  assert.ok(admitted <= 1 + 10 + 1, `${admitted} admitted at 10/s over 1 s`);
});

test("timeouts unit: full sweeps follow the idle timeout (none when off), so held connections that spoke cost nothing per sweep", () => {
  assert.equal(fullSweepEveryMs(0), Infinity);
  assert.equal(fullSweepEveryMs(1000), SWEEP_EVERY_MS);
  assert.equal(fullSweepEveryMs(16_000), 1000);
  assert.equal(fullSweepEveryMs(60_000), 3750);
  assert.equal(fullSweepEveryMs(3_600_000), FULL_SWEEP_MAX_MS);
  const connection = new Connection();
  assert.equal(awaitsFirstBytes(connection), true, "a new connection has not spoken");
  connection.heard = true;
  assert.equal(
    awaitsFirstBytes(connection),
    false,
    "once it has read, only the idle sweeps see it",
  );
  connection.extra = new ConnectionExtra();
  connection.extra.proxyPhase = PROXY_AWAIT;
  assert.equal(awaitsFirstBytes(connection), true, "a balancer's header is still awaited");
  // What the per-sweep pass over the silent ones can close is exactly what the full sweep would
  // with the idle timeout off: a connection that has spoken is never due.
  const config = { ...defaultConfig(2), idleTimeoutMs: 0, firstMessageTimeoutMs: 100 };
  const spoke = new Connection();
  spoke.openedAt = 0;
  spoke.heard = true;
  spoke.lastActivityAt = 1;
  assert.equal(overstayed(spoke, 1_000_000, config), -1);
  const silent = new Connection();
  assert.equal(overstayed(silent, 1_000_000, config), Stat.closedFirstMessageTimeout);
});
