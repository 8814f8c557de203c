/**
 * `--log-format text|json` (issue 13): text lines carry an ISO time and a level before the line
 * as it always read; JSON lines are one object each (time, level, event, message, fields).
 * Start, stop, a child's restart, a config reload and lease problems are events, and refused
 * connections are summed up by reason at most once per `--log-rejections-every`, never one line
 * per connection.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { classifyLogLine, formatLogLine } from "../server/log_line.ts";
import { freePort } from "./_ports.ts";
import { FAST_STATS, runTallyho, startTallyho, UNDER_TEST } from "./_server.ts";
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
    fields: { process: 1, pid: 42, how: "SIGKILL", "delay-ms": 200 },
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

/** A JSON log line's fields: every name kebab-case, like the config keys and flags. */
const KEBAB = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

interface LogRecord {
  time: string;
  level: string;
  event: string;
  message: string;
  fields: Record<string, string | number>;
}

test("log line: JSON field names are kebab-case, those the code counts by included; text keeps its words", () => {
  const summary = 'rejected and closed in the last 1 s: {"closedPeerError":2,"denied":1}';
  const record = JSON.parse(
    formatLogLine("json", "warn", `tallyho: warning: ${summary}`, {
      closedPeerError: 2,
      denied: 1,
    }, NOW),
  ) as LogRecord;
  assert.deepEqual(record.fields, { seconds: 1, "closed-peer-error": 2, denied: 1 });
  assert.equal(
    formatLogLine("text", "warn", `tallyho: warning: ${summary}`, { closedPeerError: 2 }, NOW),
    `2026-11-29T15:00:00.123Z warn tallyho: warning: ${summary}`,
  );
});

test("log line: the lines that name values carry them as fields", () => {
  for (
    const [message, fields] of [
      ["stopping: process 0 crashed 5 times in 10 s", {
        reason: "process 0 crashed 5 times in 10 s",
      }],
      [
        "SIGHUP: configuration not applied, keeping generation 3: 'threads' must be ...",
        { generation: 3 },
      ],
      ["cannot lease numbers: connect ECONNREFUSED; retrying", { error: "connect ECONNREFUSED" }],
      [
        "cannot lease 1000 numbers to process 2: down; serving from leased numbers, retrying",
        { count: 1000, process: 2, error: "down" },
      ],
      [
        "leasing numbers again from redis://h:1/0?key=k after 3 failed leases",
        { source: "redis://h:1/0?key=k", failedLeases: 3 },
      ],
      [
        "lost the connection to Redis at redis://h:1/0 (ECONNRESET); reconnecting",
        { target: "redis://h:1/0", error: "ECONNRESET" },
      ],
      ["reconnected to Redis at redis://h:1/0", { target: "redis://h:1/0" }],
      [
        "TLS with CN=example.com, valid until 2027-01-01T00:00:00.000Z",
        { subject: "CN=example.com", notAfter: "2027-01-01T00:00:00.000Z" },
      ],
    ] as const
  ) {
    assert.deepEqual(classifyLogLine(message).fields, fields, message);
  }
});

test(`[${UNDER_TEST}] --log-format json: the limits and numbers lines carry their values as fields, every field name kebab-case`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-log-"));
  const server = await startTallyho([
    "--log-format",
    "json",
    "--threads",
    "1",
    "--max-connections-per-address",
    "7",
    "--state",
    join(dir, "state"),
  ]);
  try {
    await server.waitFor(/"event":"limits"/);
    await waitUntil(() => /"event":"admin_start"/.test(server.output()), {
      what: "the admin API's line",
      timeoutMs: 10_000,
    });
  } finally {
    assert.equal(await server.stop("SIGTERM"), 0);
    rmSync(dir, { recursive: true, force: true });
  }
  const events = server.output().trim().split("\n").map((line) => JSON.parse(line) as LogRecord);
  const limits = events.find((e) => e.event === "limits")!;
  assert.equal(limits.fields["max-connections-per-address"], 7, JSON.stringify(limits));
  assert.equal(typeof limits.fields["max-connections"], "number", JSON.stringify(limits));
  assert.equal(typeof limits.fields["idle-timeout-ms"], "number", JSON.stringify(limits));
  const numbers = events.find((e) => e.event === "numbers")!;
  assert.equal(numbers.fields.next, 1, JSON.stringify(numbers));
  assert.match(String(numbers.fields.source), /state/, JSON.stringify(numbers));
  for (const event of events) {
    for (const name of Object.keys(event.fields)) {
      assert.match(name, KEBAB, JSON.stringify(event));
    }
    // A line that names a figure carries at least one field.
    if (/\d/.test(event.message) && event.event !== "log") {
      assert.ok(Object.keys(event.fields).length > 0, JSON.stringify(event));
    }
  }
});

/** Runs `serve` and returns its exit code and stderr's lines. */
async function startFailure(
  args: string[],
): Promise<{ code: number | string; lines: string[]; stdout: string }> {
  const { code, stdout, stderr } = await runTallyho(["serve", "--host", "127.0.0.1", ...args]);
  return { code, stdout, lines: stderr.trim().split("\n") };
}

/** The one JSON object stderr holds, checked for the shape every log line has. */
function oneRecord(result: { lines: string[] }): LogRecord {
  assert.equal(result.lines.length, 1, result.lines.join("\n"));
  const record = JSON.parse(result.lines[0]!) as LogRecord;
  assert.match(record.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(record.level, "error");
  assert.equal(record.event, "start_failed");
  for (const name of Object.keys(record.fields)) assert.match(name, KEBAB);
  return record;
}

test(`[${UNDER_TEST}] --log-format json: an error that ends serve before it serves is one JSON object on stderr, exit code unchanged`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-log-"));
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  try {
    // A bad flag value: exit 2, naming the key.
    let result = await startFailure(["--log-format", "json", "--port", "70000"]);
    assert.equal(result.code, 2);
    let record = oneRecord(result);
    assert.equal(record.fields.key, "port");
    assert.equal(record.fields["exit-code"], 2);
    assert.match(record.message, /'port' must be an integer from 0 to 65535: got 70000/);
    // An unknown flag, with --log-format=json written in one argument.
    result = await startFailure(["--log-format=json", "--prot", "1"]);
    assert.equal(result.code, 2);
    assert.match(oneRecord(result).message, /Unknown option '--prot'/);
    // The config file asks for json and gives a bad value: the file and the key are named.
    const file = join(dir, "tallyho.json");
    writeFileSync(file, JSON.stringify({ "log-format": "json", threads: "4" }));
    result = await startFailure(["--config", file, "--port", "0"]);
    assert.equal(result.code, 2);
    record = oneRecord(result);
    assert.equal(record.fields.key, "threads");
    assert.equal(record.fields.file, file);
    // A port in use: exit 1, naming the option to change.
    const port = (taken.address() as { port: number }).port;
    result = await startFailure(["--log-format", "json", "--port", String(port)]);
    assert.equal(result.code, 1);
    record = oneRecord(result);
    assert.equal(record.fields.key, "port");
    assert.match(record.message, /in use/);
    // A number source that cannot be reached (nothing listens on the port): exit 1.
    const closed = await freePort();
    result = await startFailure([
      "--log-format",
      "json",
      "--port",
      "0",
      "--numbers",
      `redis://127.0.0.1:${closed}/0?key=tallyho`,
    ]);
    assert.equal(result.code, 1);
    record = oneRecord(result);
    assert.equal(record.fields.key, "numbers");
    assert.match(record.message, /Redis/);
    // The format itself is what is wrong: plain text, as documented.
    result = await startFailure(["--log-format", "xml", "--port", "0"]);
    assert.equal(result.code, 2);
    assert.equal(result.lines[0], `tallyho: 'log-format' must be one of text, json: got "xml"`);
  } finally {
    taken.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
