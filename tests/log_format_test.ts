/**
 * `--log-format text|json` (issue 13): text lines carry an ISO time and a level before the line
 * as it always read; JSON lines are one object each (time, level, event, message, fields).
 * Start, stop, a child's restart, a config reload and lease problems are events, and refused
 * connections are summed up by reason at most once per `--log-rejections-every`, never one line
 * per connection.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { test } from "node:test";
import { classifyLogLine, formatLogLine } from "../server/log_line.ts";
import { FAST_STATS, startTallyho, UNDER_TEST } from "./_server.ts";
import { waitUntil } from "./_wait.ts";

const NOW = new Date("2026-11-29T15:00:00.123Z");

test("log line: text puts the time and level before the line as it was", () => {
  assert.equal(
    formatLogLine(
      "text",
      "warn",
      "tallyho: warning: process 0 (pid 7) died (SIGKILL); restarting in 100 ms",
      {},
      NOW,
    ),
    "2026-11-29T15:00:00.123Z warn tallyho: warning: process 0 (pid 7) died (SIGKILL); restarting in 100 ms",
  );
});

test("log line: JSON messages carry no level word of the text format", () => {
  for (
    const [level, line] of [["error", "tallyho: error: refused a lease"], [
      "warn",
      "tallyho: warning: refused a lease",
    ]] as const
  ) {
    const record = JSON.parse(formatLogLine("json", level, line));
    assert.equal(record.level, level);
    assert.equal(record.message, "refused a lease");
  }
});

test("log line: JSON is one object with the event and its figures", () => {
  const line = formatLogLine(
    "json",
    "warn",
    "tallyho: warning: process 1 (pid 42) died (SIGKILL); restarting in 200 ms",
    {},
    NOW,
  );
  assert.deepEqual(JSON.parse(line), {
    time: "2026-11-29T15:00:00.123Z",
    level: "warn",
    event: "child_restart",
    message: "process 1 (pid 42) died (SIGKILL); restarting in 200 ms",
    fields: { process: 1, pid: 42, how: "SIGKILL", delayMs: 200 },
  });
  const restart = "tallyho[process 3]: thread 1 died (boom); restarting it";
  assert.deepEqual(
    JSON.parse(formatLogLine("json", "warn", restart, {}, NOW)),
    {
      ...JSON.parse(formatLogLine("json", "warn", restart, {}, NOW)),
      event: "thread_restart",
      fields: { process: 3, thread: 1, how: "boom" },
    },
  );
  assert.equal(
    classifyLogLine("configuration generation 4: threads 2 -> 3").event,
    "config_change",
  );
  assert.equal(
    classifyLogLine("cannot lease 1000 numbers to process 0: down").event,
    "lease_failed",
  );
  assert.equal(classifyLogLine("something new").event, "log");
});

async function refusedConnections(port: number, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve) => {
      const socket = connect({ port, host: "127.0.0.1", localAddress: "127.0.0.2" });
      socket.on("error", () => resolve());
      socket.on("close", () => resolve());
      socket.setTimeout(2000, () => socket.destroy());
    });
  }
}

/** The refusals the JSON log's "rejections" summaries add up to so far. */
function refusedInSummaries(output: string): number {
  let sum = 0;
  for (const line of output.split("\n")) {
    if (!line.includes('"event":"rejections"')) continue;
    const { fields } = JSON.parse(line) as { fields: Record<string, number> };
    for (const [key, value] of Object.entries(fields)) if (key !== "seconds") sum += value;
  }
  return sum;
}

test(`[${UNDER_TEST}] --log-format json: every line is an event; refusals are summed per period, a child's restart and the stop are events`, async () => {
  const server = await startTallyho([
    "--log-format",
    "json",
    "--threads",
    "1",
    "--deny",
    "127.0.0.2/32",
    "--log-rejections-every",
    "1s",
  ], { env: FAST_STATS });
  let stopped = false;
  try {
    await refusedConnections(server.port, 60);
    // Every refusal summed in the log (the thread reports them every 50 ms here, the summary
    // comes once a period).
    await waitUntil(() => refusedInSummaries(server.output()) >= 60, {
      what: "60 refusals in the rejections summaries",
      timeoutMs: 10_000,
    });
    const pid = server.childPids().get(0)!;
    process.kill(pid, "SIGKILL");
    await waitUntil(
      () => /"event":"child_start".*\n[\s\S]*"event":"child_start"/.test(server.output()),
      { what: () => `a restart in:\n${server.output()}`, timeoutMs: 15_000 },
    );
    assert.equal(await server.stop("SIGTERM"), 0);
    stopped = true;
    const lines = server.output().trim().split("\n");
    const events = lines.map((line) => {
      const parsed = JSON.parse(line) as {
        time: string;
        level: string;
        event: string;
        message: string;
        fields: Record<string, number | string>;
      };
      assert.match(parsed.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, line);
      assert.ok(["info", "warn", "error"].includes(parsed.level), line);
      assert.equal(typeof parsed.message, "string");
      return parsed;
    });
    const named = events.map((e) => e.event);
    for (
      const event of [
        "start",
        "child_start",
        "admin_start",
        "child_restart",
        "stop_requested",
        "stop",
      ]
    ) {
      assert.ok(named.includes(event), `${event} in ${named.join(", ")}`);
    }
    const start = events.find((e) => e.event === "start")!;
    assert.equal(start.fields.port, server.port);
    const restart = events.find((e) => e.event === "child_restart")!;
    assert.equal(restart.fields.pid, pid);
    assert.equal(restart.level, "warn");
    const summaries = events.filter((e) => e.event === "rejections");
    assert.ok(summaries.length >= 1 && summaries.length <= 4, `${summaries.length} summaries`);
    const refused = summaries.reduce(
      (sum, e) =>
        sum +
        Object.entries(e.fields).filter(([k]) => k !== "seconds").reduce(
          (s, [, v]) => s + Number(v),
          0,
        ),
      0,
    );
    assert.equal(refused, 60, JSON.stringify(summaries));
    assert.ok(lines.length < 30, `not a line per refused connection: ${lines.length} lines`);
    assert.equal(events.find((e) => e.event === "stop")!.level, "info");
  } finally {
    if (!stopped) await server.stop();
  }
});
