/**
 * The dashboard's data handling, without a browser: `/v1/stats` samples into rates and
 * five-minute series, the configuration form's patch, and the page's number formats.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { configSchema } from "../admin/config_schema.ts";
import { boundsText, buildPatch, describeChanges, parseField } from "../admin/ui/config_form.ts";
import { formatCount, formatRate, formatUptime } from "../admin/ui/format.ts";
import {
  counterIncrease,
  type StatsSample,
  StatsSeries,
  type ThreadSample,
} from "../admin/ui/stats_series.ts";
import { configToJson } from "../server/config/config_json.ts";
import { defaultConfig } from "../server/config/resolve_config.ts";

const T0 = 1_700_000_000_000;

function thread(figures: Partial<ThreadSample>): ThreadSample {
  return {
    connectionsAccepted: 0,
    connectionsActive: 0,
    replies: 0,
    lastNumber: 0,
    rejectedMaxConnections: 0,
    rejectedAddressCap: 0,
    rejectedRate: 0,
    rejectedDenied: 0,
    closedFirstMessageTimeout: 0,
    closedIdleTimeout: 0,
    closedUnfinishedLine: 0,
    closedSlowReader: 0,
    closedLineTooLong: 0,
    closedNumbersUnavailable: 0,
    loopDelayMaxMs: 0,
    ...figures,
  };
}

function sample(...processes: Array<[pid: number, threads: Partial<ThreadSample>[]]>): StatsSample {
  return { processes: processes.map(([pid, threads]) => ({ pid, threads: threads.map(thread) })) };
}

test("dashboard series turn successive stats into per-second rates across processes", () => {
  const series = new StatsSeries();
  const first = series.add(
    sample([10, [{ replies: 100, connectionsAccepted: 10 }]], [11, [{ replies: 50 }]]),
    T0,
  );
  // Nothing to measure the first sample against.
  assert.equal(first.repliesPerSecond, 0);
  const second = series.add(
    sample(
      [10, [{ replies: 300, connectionsAccepted: 30, connectionsActive: 4, lastNumber: 40 }]],
      [11, [{ replies: 150, rejectedRate: 6, connectionsActive: 1, lastNumber: 41 }]],
    ),
    T0 + 2000,
  );
  assert.equal(second.repliesPerSecond, 100 + 50);
  assert.equal(second.connectionsPerSecond, 10);
  assert.equal(second.rejectionsPerSecond.rejectedRate, 3);
  assert.equal(second.rejectionsPerSecond.rejectedDenied, 0);
  assert.equal(second.activeConnections, 5);
  assert.equal(second.lastNumber, 41);
  assert.equal(series.latest(), second);
});

test("dashboard series hold a rate until a process reports again, and drop it once stale", () => {
  // Reports arrive once a second; polls that see the same report must not draw a 0.
  const series = new StatsSeries({ staleMs: 2500 });
  series.add(sample([10, [{ replies: 0 }]]), T0);
  assert.equal(series.add(sample([10, [{ replies: 500 }]]), T0 + 1000).repliesPerSecond, 500);
  // The same report seen again: the rate is held.
  assert.equal(series.add(sample([10, [{ replies: 500 }]]), T0 + 2000).repliesPerSecond, 500);
  // Two reports seen at once: measured over the time since the last change, so still 500/s.
  assert.equal(series.add(sample([10, [{ replies: 1500 }]]), T0 + 3000).repliesPerSecond, 500);
  // No change for staleMs: the load stopped.
  assert.equal(series.add(sample([10, [{ replies: 1500 }]]), T0 + 4000).repliesPerSecond, 500);
  assert.equal(series.add(sample([10, [{ replies: 1500 }]]), T0 + 5500).repliesPerSecond, 0);
  assert.equal(series.add(sample([10, [{ replies: 1500 }]]), T0 + 6500).repliesPerSecond, 0);
  // Traffic again: measured from when the rate was last taken as 0.
  assert.equal(series.add(sample([10, [{ replies: 1700 }]]), T0 + 7500).repliesPerSecond, 100);
});

test("dashboard series never go negative on counter resets: restarts, thread restarts, resizes", () => {
  const series = new StatsSeries();
  series.add(sample([10, [{ replies: 1000 }, { replies: 1000 }]]), T0);
  // A thread restarted inside its process: its counter starts again, and all of it is new.
  let point = series.add(sample([10, [{ replies: 1100 }, { replies: 30 }]]), T0 + 1000);
  assert.equal(point.repliesPerSecond, 100 + 30);
  // A third thread appears (a live resize): it counts from 0.
  point = series.add(
    sample([10, [{ replies: 1200 }, { replies: 60 }, { replies: 20 }]]),
    T0 + 2000,
  );
  assert.equal(point.repliesPerSecond, 100 + 30 + 20);
  // The process is restarted with a new pid and low counters: no drop below 0, no jump.
  point = series.add(sample([12, [{ replies: 5 }]]), T0 + 3000);
  assert.equal(point.repliesPerSecond, 0);
  point = series.add(sample([12, [{ replies: 205 }]]), T0 + 4000);
  assert.equal(point.repliesPerSecond, 200);
  assert.equal(counterIncrease(undefined, 7), 7);
  assert.equal(counterIncrease(10, 3), 3);
  assert.equal(counterIncrease(10, 15), 5);
  for (const p of series.points()) assert.ok(p.repliesPerSecond >= 0);
});

test("dashboard series keep exactly the last five minutes of points and annotations", () => {
  const series = new StatsSeries();
  series.annotate(T0 + 10_000, "gen 2: greeting");
  for (let second = 0; second <= 400; second++) {
    series.add(sample([10, [{ replies: second * 10, lastNumber: second }]]), T0 + second * 1000);
    if (second === 200) series.annotate(T0 + 200_000, "gen 3: threads");
  }
  const points = series.points();
  assert.equal(points.length, 301);
  assert.equal(points[0]!.at, T0 + 100_000);
  assert.equal(points.at(-1)!.at, T0 + 400_000);
  assert.deepEqual(series.annotations(), [{ at: T0 + 200_000, label: "gen 3: threads" }]);
  const columns = series.columns();
  // Time, replies, new and active connections, 4 refusal reasons, the last number, 6 close reasons
  // and the longest loop delay.
  assert.equal(columns.length, 16);
  for (const column of columns) assert.equal(column.length, 301);
  assert.equal(columns[0]![0], (T0 + 100_000) / 1000);
  assert.equal(columns[1]!.at(-1), 10);
  assert.equal(columns[8]!.at(-1), 400);
  // A clock set back starts the series again rather than drawing time backwards.
  series.add(sample([10, [{ replies: 0 }]]), T0);
  assert.equal(series.points().length, 1);
  assert.throws(() => new StatsSeries({ windowMs: 0 }), RangeError);
});

test("dashboard config form sends only changed live keys, typed by the schema", () => {
  const schema = configSchema();
  const config = configToJson(defaultConfig(2));
  const texts = {
    greeting: "Howdy ",
    "max-line-bytes": "1024",
    "idle-timeout": config["idle-timeout"] as string,
    deny: "10.0.0.0/8, 192.168.0.0/16",
    framing: "line",
    // Restart-only: never sent, whatever the field says.
    port: "1234",
  };
  assert.deepEqual(buildPatch(schema, config, texts), {
    greeting: "Howdy ",
    "max-line-bytes": 1024,
    deny: ["10.0.0.0/8", "192.168.0.0/16"],
    framing: "line",
  });
  // Unchanged text, and an equal value spelled alike, make an empty patch.
  assert.deepEqual(buildPatch(schema, config, { threads: "2", deny: "" }), {});
  // What is not a whole number goes as typed, so the server's error names it.
  assert.equal(parseField(schema.keys["max-line-bytes"]!, "12k"), "12k");
  assert.equal(parseField(schema.keys["max-line-bytes"]!, " 12 "), 12);
  assert.equal(parseField(schema.keys["state"]!, ""), null);
  assert.equal(boundsText(schema.keys["max-line-bytes"]!), "1 to 67,108,864");
  assert.equal(boundsText(schema.keys["framing"]!), "chunk or line");
  assert.match(boundsText(schema.keys["idle-timeout"]!), /^0s to 86400s/);
  assert.equal(
    describeChanges({ greeting: { from: "Hello World", to: "Hi" } }),
    'greeting "Hello World" → "Hi"',
  );
  assert.equal(describeChanges({}), "no change");
});

test("dashboard formats counts, rates and uptimes compactly", () => {
  assert.equal(formatCount(1234567), "1,234,567");
  assert.equal(formatRate(0), "0.0");
  assert.equal(formatRate(2.25), "2.3");
  assert.equal(formatRate(12345.6), "12,346");
  assert.equal(formatRate(250_000), "250k");
  assert.equal(formatRate(3_450_000), "3.5M");
  assert.equal(formatUptime(42.9), "42s");
  assert.equal(formatUptime(187), "3m 07s");
  assert.equal(formatUptime(5 * 3600 + 180), "5h 03m");
  assert.equal(formatUptime(2 * 86400 + 4 * 3600), "2d 04h");
});

test("dashboard series seeded with the server's history shows it before the live points", () => {
  const series = new StatsSeries();
  const point = (at: number, repliesPerSecond: number) => ({
    at,
    repliesPerSecond,
    connectionsPerSecond: 0,
    activeConnections: 0,
    rejectionsPerSecond: {
      rejectedMaxConnections: 0,
      rejectedAddressCap: 0,
      rejectedRate: 0,
      rejectedDenied: 0,
    },
    lastNumber: 0,
    closesPerSecond: {
      closedFirstMessageTimeout: 0,
      closedIdleTimeout: 0,
      closedUnfinishedLine: 0,
      closedSlowReader: 0,
      closedLineTooLong: 0,
      closedNumbersUnavailable: 0,
    },
    loopDelayMaxMs: 0,
  });
  series.seed([point(1_000_000 - 400_000, 1), point(1_000_000 - 2000, 7), point(999_000, 9)]);
  // Older than five minutes before the newest: dropped.
  assert.deepEqual(series.points().map((p) => p.repliesPerSecond), [7, 9]);
  series.add({ processes: [] }, 1_000_000);
  // A second seed never puts points after ones already there.
  series.seed([point(999_500, 3), point(1_000_500, 4)]);
  assert.deepEqual(series.points().map((p) => p.at), [998_000, 999_000, 1_000_000]);
});

test("dashboard series count the server's closes per second by reason", () => {
  const series = new StatsSeries();
  series.add(sample([10, [{ closedIdleTimeout: 5 }, {}]]), T0);
  series.add(
    sample([10, [{ closedIdleTimeout: 15, closedSlowReader: 2 }, { closedIdleTimeout: 4 }]]),
    T0 + 2000,
  );
  const point = series.latest()!;
  assert.equal(point.closesPerSecond.closedIdleTimeout, 7);
  assert.equal(point.closesPerSecond.closedSlowReader, 1);
  assert.equal(point.closesPerSecond.closedLineTooLong, 0);
  assert.equal(series.columns()[10]!.at(-1), 7, "idle closes are the second close column");
});

test("dashboard series chart the worst thread's event-loop delay", () => {
  const series = new StatsSeries();
  series.add(sample([10, [{ loopDelayMaxMs: 3 }, { loopDelayMaxMs: 41.5 }]], [11, [{}]]), T0);
  assert.equal(series.latest()!.loopDelayMaxMs, 41.5);
  assert.equal(series.columns()[15]!.at(-1), 41.5);
});

test("process series: CPU is a share of one core, held between reports; a restart starts afresh", async () => {
  const { ProcessSeries } = await import("../admin/ui/process_series.ts");
  const series = new ProcessSeries();
  const sample = (pid: number, cpuSeconds: number, restarts: number) => [
    { index: 0, pid: 100, rssBytes: 50 << 20, cpuSeconds, restarts: 0 },
    { index: 1, pid, rssBytes: 40 << 20, cpuSeconds, restarts },
  ];
  series.add(sample(200, 1, 0), T0);
  series.add(sample(200, 1.5, 0), T0 + 1000);
  // The same report read again by the next poll: the share is held, not drawn as 0.
  series.add(sample(200, 1.5, 0), T0 + 2000);
  series.add(sample(200, 2.5, 0), T0 + 3000);
  // Process 1 restarted: a new pid with its CPU from 0, one restart more.
  series.add(sample(201, 0.1, 1), T0 + 4000);
  assert.deepEqual(series.indexes(), [0, 1]);
  assert.deepEqual(series.values(0, "cpuShare"), [0, 0.5, 0.5, 0.5, 0]);
  assert.deepEqual(series.values(1, "cpuShare"), [0, 0.5, 0.5, 0.5, 0]);
  assert.deepEqual(series.values(1, "restarts"), [0, 0, 0, 0, 1]);
  assert.deepEqual(series.values(0, "rssBytes"), Array(5).fill(50 << 20));
  // Unchanged past the staleness limit: 0, not the old share.
  series.add(sample(201, 0.1, 1), T0 + 7000);
  assert.equal(series.values(1, "cpuShare").at(-1), 0);
  const columns = series.columns();
  assert.deepEqual(columns.indexes, [0, 1]);
  assert.equal(columns.memory.length, 3, "times and one column per process");
  assert.equal(columns.cpu[0]!.at(-1), (T0 + 7000) / 1000);
});

test("process series: a process added later has gaps before it, and old points leave the window", async () => {
  const { ProcessSeries } = await import("../admin/ui/process_series.ts");
  const series = new ProcessSeries({ windowMs: 10_000 });
  series.add([{ index: 0, pid: 1, rssBytes: 1, cpuSeconds: 0, restarts: 0 }], T0);
  series.add([
    { index: 0, pid: 1, rssBytes: 2, cpuSeconds: 0, restarts: 0 },
    { index: 1, pid: 2, rssBytes: 3, cpuSeconds: 0, restarts: 0 },
  ], T0 + 1000);
  assert.deepEqual(series.columns().memory.slice(1), [[1, 2], [null, 3]]);
  series.add([{ index: 0, pid: 1, rssBytes: 4, cpuSeconds: 0, restarts: 0 }], T0 + 11_000);
  assert.deepEqual(series.columns().memory.slice(1), [[2, 4], [3, null]]);
  // A process restarted and not yet reported (0 B, 0 s): a gap, not a dip to 0 or a CPU spike.
  series.add([{ index: 0, pid: 5, rssBytes: 0, cpuSeconds: 0, restarts: 1 }], T0 + 12_000);
  series.add([{ index: 0, pid: 5, rssBytes: 6, cpuSeconds: 0.2, restarts: 1 }], T0 + 13_000);
  assert.deepEqual(series.values(0, "rssBytes").slice(-3), [4, null, 6]);
  assert.deepEqual(series.values(0, "cpuShare").slice(-3), [0, null, 0]);
  assert.deepEqual(series.values(0, "restarts").slice(-3), [0, 1, 1]);
  assert.throws(() => new ProcessSeries({ staleMs: 0 }), /'staleMs' must be a positive number/);
});
