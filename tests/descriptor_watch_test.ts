/**
 * The descriptor watch of a serving process, with descriptors that run out on cue: it holds a
 * reserve, gives it up when none is left (so the accept loop can take connections and close
 * them), says so once each way, and does not flap at the limit; the gate then refuses every new
 * connection, counted. And a process's report survives a memory reading that fails.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import { Connection } from "../server/numbering/connection.ts";
import { defaultConfig } from "../server/config/resolve_config.ts";
import { DescriptorWatch } from "../server/host/descriptor_watch.ts";
import {
  ConnectionGate,
  createGateBuffers,
  setOutOfDescriptors,
} from "../server/limits/connection_gate.ts";
import { HealthReader } from "../server/process/health_reader.ts";
import { createStatsBuffer, Stat, statsRow } from "../server/threads/thread_stats.ts";

/** A process with `limit` descriptors, `used` of them taken by connections. */
class Descriptors {
  used = 0;
  readonly open = new Set<number>();
  #next = 100;

  constructor(public limit: number) {}

  take = (): number => {
    if (this.used + this.open.size >= this.limit) {
      throw Object.assign(new Error("EMFILE: too many open files"), { code: "EMFILE" });
    }
    const fd = this.#next++;
    this.open.add(fd);
    return fd;
  };

  give = (fd: number): void => {
    assert.ok(this.open.delete(fd), `closed ${fd} twice`);
  };
}

test("descriptor watch: holds a reserve, gives it up when none is left, and serves again only with a margin above it", () => {
  const fds = new Descriptors(40);
  const told: boolean[] = [];
  const watch = new DescriptorWatch({
    everyMs: 1_000_000,
    reserve: 8,
    margin: 16,
    onChange: (out) => told.push(out),
    open: fds.take,
    close: fds.give,
  });
  try {
    assert.equal(fds.open.size, 8, "the reserve");
    fds.used = 31;
    watch.check();
    assert.equal(watch.out, false, "one left beside the reserve: still in");
    assert.equal(fds.open.size, 8);
    fds.used = 32; // connections took everything but the reserve
    watch.check();
    assert.equal(watch.out, true);
    assert.equal(fds.open.size, 0, "the reserve is given up to the accept loop");
    assert.deepEqual(told, [true]);
    fds.used = 20; // 20 free: not the reserve and the margin (24)
    watch.check();
    assert.equal(watch.out, true, "no flapping at the limit");
    assert.equal(fds.open.size, 0, "what a failed refill took is given back");
    fds.used = 16;
    watch.check();
    assert.equal(watch.out, false);
    assert.equal(fds.open.size, 8, "the reserve is held again, the margin let go");
    assert.deepEqual(told, [true, false], "told once each way");
  } finally {
    watch.stop();
  }
  assert.equal(fds.open.size, 0, "stop gives the reserve back");
});

test("descriptor watch: a probe that fails for another reason (no /dev/null) is not taken for running out", () => {
  const told: boolean[] = [];
  const watch = new DescriptorWatch({
    everyMs: 1_000_000,
    onChange: (out) => told.push(out),
    open: () => {
      throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
    },
    close: () => {},
  });
  watch.check();
  watch.stop();
  assert.deepEqual(told, []);
});

test("connection gate: while the process is out of descriptors every new connection is refused and counted", () => {
  const buffers = createGateBuffers();
  const stats = statsRow(createStatsBuffer(1), 0);
  const gate = new ConnectionGate(buffers, defaultConfig(2), stats);
  assert.equal(gate.admit(new Connection(), "127.0.0.1", 0), true);
  setOutOfDescriptors(buffers, true);
  assert.equal(gate.admit(new Connection(), "127.0.0.1", 0), false);
  assert.equal(gate.admit(new Connection(), "10.0.0.1", 0), false);
  assert.equal(stats[Stat.rejectedNoDescriptors], 2);
  assert.equal(gate.processConnections, 1, "a refused one holds no slot");
  setOutOfDescriptors(buffers, false);
  assert.equal(gate.admit(new Connection(), "127.0.0.1", 0), true);
});

test("process report: a memory reading that fails reports the last figure and says so once, and once when it works again", () => {
  const lines: string[] = [];
  const health = new HealthReader((line) => lines.push(line));
  const first = health.read();
  assert.ok(first.rssBytes > 0 && first.cpuSeconds >= 0);
  const real = process.memoryUsage;
  try {
    process.memoryUsage = (() => {
      throw new Error("Failed to get memory usage");
    }) as unknown as typeof process.memoryUsage;
    for (let i = 0; i < 3; i++) assert.equal(health.read().rssBytes, first.rssBytes);
    process.memoryUsage = (() => ({ ...real(), rss: 0 })) as unknown as typeof real;
    assert.equal(health.read().rssBytes, first.rssBytes, "Deno answers 0 then");
  } finally {
    process.memoryUsage = real;
  }
  assert.ok(health.read().rssBytes > 0);
  assert.equal(lines.length, 2, lines.join("\n"));
  assert.match(lines[0]!, /^cannot read this process's memory use \(Failed to get memory usage; /);
  assert.equal(lines[1], "reading this process's memory use again");
});
