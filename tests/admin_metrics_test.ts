/**
 * The admin API's /metrics: names, types and labels, checked by promtool itself.
 */
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import process from "node:process";
import { test } from "node:test";
import type { AdminInfo, ProcessStats } from "../admin/backend.ts";
import { renderMetrics } from "../admin/metrics.ts";
import { type ProcessMetrics, readProcessMetrics } from "../admin/process_metrics.ts";
import { STAT_NAMES } from "../server/threads/thread_stats.ts";
import { figures } from "./_admin.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";

const INFO: AdminInfo = {
  version: "1.2.3",
  runtime: "bun",
  runtimeVersion: "1.4.5",
  pid: 42,
  uptimeSeconds: 3,
  state: "paused",
  listen: { host: "0.0.0.0", port: 9000 },
  configGeneration: 5,
};

const PROCESSES: ProcessStats[] = [
  {
    index: 0,
    pid: 1000,
    threads: [
      figures({
        connectionsAccepted: 10,
        connectionsActive: 2,
        replies: 30,
        messages: 31,
        bytesIn: 400,
        bytesOut: 500,
        lastNumber: 2 ** 53 - 1,
        closedLineTooLong: 1,
        closedPeerError: 2,
        acceptErrors: 3,
        readPauses: 4,
      }),
      figures({ connectionsAccepted: 1 }),
    ],
  },
  { index: 1, pid: 1001, threads: [figures({ replies: 6 })] },
];

const PROCESS: ProcessMetrics = {
  residentMemoryBytes: 1024,
  virtualMemoryBytes: 4096,
  startTimeSeconds: 1700000000.5,
  cpuSecondsTotal: 1.25,
  openFds: 9,
  maxFds: 1024,
};

function render(processes = PROCESSES, process: ProcessMetrics = PROCESS): string {
  return renderMetrics({ info: INFO, processes, process });
}

const promtoolMissing = toolMissing("promtool", "prometheus");
const PROMTOOL = promtoolMissing === null ? "promtool" : undefined;

// CI installs promtool (.ci/run); there its absence is a failure, not a reason to skip.
test(
  "metrics pass promtool check metrics",
  { skip: skipOffCi(promtoolMissing) },
  () => {
    assert.ok(PROMTOOL, "promtool is not installed (package prometheus); CI must have it");
    for (const text of [render(), render([], {}), render(PROCESSES, {})]) {
      const checked: SpawnSyncReturns<string> = spawnSync(PROMTOOL, ["check", "metrics"], {
        input: text,
        encoding: "utf8",
      });
      assert.equal(
        checked.status,
        0,
        `promtool check metrics:\n${checked.stdout}${checked.stderr}\n--- input ---\n${text}`,
      );
    }
  },
);

test("metrics: promtool would catch a counter without _total (the check can fail)", {
  skip: skipOffCi(promtoolMissing),
}, () => {
  assert.ok(PROMTOOL);
  const bad = render().replace(/tallyho_replies_total/g, "tallyho_replies");
  const checked = spawnSync(PROMTOOL, ["check", "metrics"], { input: bad, encoding: "utf8" });
  assert.notEqual(checked.status, 0);
});

test("metrics name every figure per process and thread, with reasons as labels", () => {
  const text = render();
  const expected = [
    'tallyho_build_info{version="1.2.3",runtime="bun"} 1',
    'tallyho_listener_state{state="running"} 0',
    'tallyho_listener_state{state="paused"} 1',
    "tallyho_config_generation 5",
    'tallyho_connections_accepted_total{process="0",thread="0"} 10',
    'tallyho_connections_accepted_total{process="0",thread="1"} 1',
    'tallyho_connections_accepted_total{process="1",thread="0"} 0',
    'tallyho_connections_active{process="0",thread="0"} 2',
    'tallyho_replies_total{process="1",thread="0"} 6',
    'tallyho_messages_total{process="0",thread="0"} 31',
    'tallyho_received_bytes_total{process="0",thread="0"} 400',
    'tallyho_sent_bytes_total{process="0",thread="0"} 500',
    'tallyho_last_number{process="0",thread="0"} 9007199254740991',
    'tallyho_connections_closed_total{process="0",thread="0",reason="line_too_long"} 1',
    'tallyho_connections_closed_total{process="0",thread="0",reason="numbers_unavailable"} 0',
    'tallyho_connections_closed_total{process="0",thread="0",reason="peer_error"} 2',
    'tallyho_accept_errors_total{process="0",thread="0"} 3',
    'tallyho_read_pauses_total{process="0",thread="0"} 4',
    "process_resident_memory_bytes 1024",
    "process_virtual_memory_bytes 4096",
    "process_start_time_seconds 1700000000.5",
    "process_cpu_seconds_total 1.25",
    "process_open_fds 9",
    "process_max_fds 1024",
  ];
  const lines = new Set(text.split("\n"));
  for (const line of expected) assert.ok(lines.has(line), `missing: ${line}\n${text}`);
  // One sample per figure per thread (3 threads), and one more per thread for the event-loop
  // delay histogram, whose sample count is both its `+Inf` bucket and its `_count`.
  const samples = text.split("\n").filter((line) =>
    line.startsWith("tallyho_") && line.includes("thread=")
  );
  assert.equal(samples.length, STAT_NAMES.length * 3 + 3);
  assert.ok(text.endsWith("\n"));
});

test("metrics give every family HELP and TYPE once, samples together, no client address", () => {
  const text = render();
  const seen = new Set<string>();
  let current = "";
  let currentType = "";
  for (const line of text.trimEnd().split("\n")) {
    const type = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line);
    if (type) {
      assert.ok(!seen.has(type[1]!), `family ${type[1]} twice`);
      seen.add(type[1]!);
      current = type[1]!;
      currentType = type[2]!;
      if (type[2] === "counter") assert.match(current, /_total$/);
      continue;
    }
    if (line.startsWith("# HELP ")) continue;
    const name = line.split(/[{ ]/)[0]!;
    if (currentType === "histogram") {
      assert.ok(
        [`${current}_bucket`, `${current}_sum`, `${current}_count`].includes(name),
        `sample outside its family: ${line}`,
      );
    } else assert.equal(name, current, `sample outside its family: ${line}`);
    const allowed = ["process", "thread", "reason", "state", "version", "runtime"];
    if (currentType === "histogram") allowed.push("le");
    for (const label of line.matchAll(/(\w+)="/g)) {
      assert.ok(allowed.includes(label[1]!), `label ${label[1]} in ${line}`);
    }
  }
});

test("metrics escape label values", () => {
  const text = renderMetrics({
    info: { ...INFO, version: 'a"b\\c\nd' },
    processes: [],
    process: {},
  });
  assert.match(text, /^tallyho_build_info\{version="a\\"b\\\\c\\nd",runtime="bun"\} 1$/m);
});

test("process metrics are read from /proc on Linux", { skip: process.platform !== "linux" }, () => {
  const metrics = readProcessMetrics();
  assert.ok(metrics.residentMemoryBytes! > 1024 * 1024, `rss ${metrics.residentMemoryBytes}`);
  assert.ok(metrics.virtualMemoryBytes! >= metrics.residentMemoryBytes!);
  assert.ok(metrics.openFds! >= 3, `open fds ${metrics.openFds}`);
  assert.ok(metrics.maxFds! >= metrics.openFds!);
  assert.ok(metrics.cpuSecondsTotal! > 0);
  const age = Date.now() / 1000 - metrics.startTimeSeconds!;
  assert.ok(age >= 0 && age < 3600, `started ${age} s ago`);
});

test("metrics show each thread's event-loop delay as a histogram in seconds, and p50/p99/max", () => {
  const delayed = figures({
    loopDelayP50Ms: 0.5,
    loopDelayP99Ms: 3,
    loopDelayMaxMs: 120,
    loopDelayLe1ms: 90,
    loopDelayLe2ms: 95,
    loopDelayLe5ms: 98,
    loopDelayLe10ms: 98,
    loopDelayLe25ms: 98,
    loopDelayLe50ms: 98,
    loopDelayLe100ms: 99,
    loopDelayLe250ms: 100,
    loopDelayLe500ms: 100,
    loopDelayLe1000ms: 100,
    loopDelayLe2500ms: 100,
    loopDelaySamples: 100,
    loopDelaySumMs: 250,
  });
  const text = render([{ index: 2, pid: 7, threads: [figures({}), delayed] }]);
  const lines = new Set(text.split("\n"));
  for (
    const line of [
      "# TYPE tallyho_event_loop_delay_seconds histogram",
      'tallyho_event_loop_delay_seconds_bucket{process="2",thread="1",le="0.001"} 90',
      'tallyho_event_loop_delay_seconds_bucket{process="2",thread="1",le="0.1"} 99',
      'tallyho_event_loop_delay_seconds_bucket{process="2",thread="1",le="2.5"} 100',
      'tallyho_event_loop_delay_seconds_bucket{process="2",thread="1",le="+Inf"} 100',
      'tallyho_event_loop_delay_seconds_sum{process="2",thread="1"} 0.25',
      'tallyho_event_loop_delay_seconds_count{process="2",thread="1"} 100',
      'tallyho_event_loop_delay_seconds_count{process="2",thread="0"} 0',
      'tallyho_event_loop_delay_p50_seconds{process="2",thread="1"} 0.0005',
      'tallyho_event_loop_delay_p99_seconds{process="2",thread="1"} 0.003',
      'tallyho_event_loop_delay_max_seconds{process="2",thread="1"} 0.12',
    ]
  ) assert.ok(lines.has(line), `missing: ${line}\n${text}`);
  if (PROMTOOL) {
    const checked = spawnSync(PROMTOOL, ["check", "metrics"], { input: text, encoding: "utf8" });
    assert.equal(checked.status, 0, `${checked.stdout}${checked.stderr}\n${text}`);
  }
});

test("metrics give each serving process's memory, CPU, restarts and uptime a process label", () => {
  const text = render([
    {
      index: 0,
      pid: 10,
      threads: [figures({})],
      rssBytes: 52_428_800,
      cpuSeconds: 1.5,
      restarts: 0,
      uptimeSeconds: 30.25,
    },
    {
      index: 1,
      pid: 11,
      threads: [figures({})],
      rssBytes: 40_000_000,
      cpuSeconds: 0.25,
      restarts: 2,
      uptimeSeconds: 4,
    },
  ]);
  const lines = new Set(text.split("\n"));
  for (
    const line of [
      "# TYPE tallyho_process_resident_memory_bytes gauge",
      'tallyho_process_resident_memory_bytes{process="0"} 52428800',
      'tallyho_process_cpu_seconds_total{process="1"} 0.25',
      "# TYPE tallyho_process_restarts_total counter",
      'tallyho_process_restarts_total{process="1"} 2',
      'tallyho_process_restarts_total{process="0"} 0',
      'tallyho_process_uptime_seconds{process="0"} 30.25',
    ]
  ) assert.ok(lines.has(line), `missing: ${line}\n${text}`);
  if (PROMTOOL) {
    const checked = spawnSync(PROMTOOL, ["check", "metrics"], { input: text, encoding: "utf8" });
    assert.equal(checked.status, 0, `${checked.stdout}${checked.stderr}\n${text}`);
  }
});

test("metrics name the number source's kind and the last lease's latency", () => {
  const text = renderMetrics({
    info: {
      ...INFO,
      numbers: {
        kind: "state-file",
        description: "state file /var/lib/tallyho/numbers",
        connected: true,
        lastError: null,
        lastErrorAt: null,
        leaseErrors: 1,
        leases: 7,
        lastLease: { first: 1, last: 4096 },
        next: 4097,
        leasesRefused: 0,
        lastLeaseMs: 2.5,
      },
    },
    processes: PROCESSES,
    process: PROCESS,
  });
  const lines = new Set(text.split("\n"));
  for (
    const line of [
      'tallyho_numbers_source_info{kind="state-file"} 1',
      "tallyho_number_last_lease_seconds 0.0025",
      "tallyho_number_lease_errors_total 1",
      "tallyho_numbers_leased_next 4097",
    ]
  ) assert.ok(lines.has(line), `missing: ${line}\n${text}`);
  if (PROMTOOL) {
    const checked = spawnSync(PROMTOOL, ["check", "metrics"], { input: text, encoding: "utf8" });
    assert.equal(checked.status, 0, `${checked.stdout}${checked.stderr}\n${text}`);
  }
});

test("metrics give each process's leases a process label, and the state file's durable mark", () => {
  const leasing = (leases: number, errors: number, lastLeaseMs: number | null) => ({
    leases,
    blocksLeased: leases * 2,
    leaseErrors: errors,
    lastLeaseMs,
  });
  const text = renderMetrics({
    info: {
      ...INFO,
      numbers: {
        kind: "state-file",
        description: "state file /var/lib/tallyho/numbers",
        connected: true,
        lastError: null,
        lastErrorAt: null,
        leaseErrors: 0,
        leases: 3,
        lastLease: { first: 1, last: 4096 },
        next: 12289,
        durableMark: 12289,
        durableAt: 1700000000500,
      },
    },
    processes: [
      { ...PROCESSES[0]!, numbersRemaining: 4000, leasing: leasing(2, 1, 1.5) },
      { ...PROCESSES[1]!, numbersRemaining: 0, leasing: leasing(0, 0, null) },
    ],
    process: PROCESS,
  });
  const lines = new Set(text.split("\n"));
  for (
    const line of [
      "# TYPE tallyho_process_number_leases_total counter",
      'tallyho_process_number_leases_total{process="0"} 2',
      'tallyho_process_number_leases_total{process="1"} 0',
      'tallyho_process_number_blocks_total{process="0"} 4',
      'tallyho_process_number_lease_errors_total{process="0"} 1',
      'tallyho_process_number_last_lease_seconds{process="0"} 0.0015',
      'tallyho_numbers_remaining{process="0"} 4000',
      "tallyho_numbers_durable_mark 12289",
      "tallyho_numbers_durable_mark_time_seconds 1700000000.5",
    ]
  ) assert.ok(lines.has(line), `missing: ${line}\n${text}`);
  assert.ok(
    !text.includes('tallyho_process_number_last_lease_seconds{process="1"}'),
    "no latency before a process's first lease",
  );
  if (PROMTOOL) {
    const checked = spawnSync(PROMTOOL, ["check", "metrics"], { input: text, encoding: "utf8" });
    assert.equal(checked.status, 0, `${checked.stdout}${checked.stderr}\n${text}`);
  }
});

test("metrics give the limits in force, one sample per numeric key, durations in seconds", async () => {
  const { configToJson } = await import("../server/config/config_json.ts");
  const { defaultConfig } = await import("../server/config/resolve_config.ts");
  const config = configToJson({ ...defaultConfig(2), maxConnections: 5000, idleTimeoutMs: 30_000 });
  const text = renderMetrics({ info: INFO, processes: PROCESSES, process: PROCESS, config });
  const lines = new Set(text.split("\n"));
  for (
    const line of [
      "# TYPE tallyho_config_limit gauge",
      'tallyho_config_limit{key="max-connections"} 5000',
      'tallyho_config_limit{key="idle-timeout"} 30',
      'tallyho_config_limit{key="first-message-timeout"} 10',
      'tallyho_config_limit{key="max-pending-reply-bytes"} 1048576',
    ]
  ) assert.ok(lines.has(line), `missing: ${line}\n${text}`);
  assert.ok(!text.includes('key="greeting"'), "only numbers are limits");
  if (PROMTOOL) {
    const checked = spawnSync(PROMTOOL, ["check", "metrics"], { input: text, encoding: "utf8" });
    assert.equal(checked.status, 0, `${checked.stdout}${checked.stderr}\n${text}`);
  }
});
