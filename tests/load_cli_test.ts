/**
 * `tallyho load` end to end: against the real server, against broken and foreign servers, and
 * with bad flags. The load generator runs as a subprocess, as a user runs it.
 */
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { test } from "node:test";
import { runTallyho, startTallyho, UNDER_TEST } from "./_server.ts";
import type { LoadReport } from "../load/load_report.ts";

const LOAD_TIMEOUT_MS = 60_000;

async function load(port: number, args: string[]) {
  const result = await runTallyho(
    ["load", "--port", String(port), "--duration", "30s", "--json", ...args],
    LOAD_TIMEOUT_MS,
  );
  let report: LoadReport | null = null;
  try {
    report = JSON.parse(result.stdout) as LoadReport;
  } catch {
    // Left null: the assertions below show stdout and stderr.
  }
  return { ...result, report };
}

/** A tiny server on 127.0.0.1 that answers each line with `reply(connectionIndex)`. */
async function lineServer(reply: (connection: number) => string): Promise<Server> {
  let connections = 0;
  const server = createServer((socket: Socket) => {
    const index = connections++;
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      let lines = 0;
      for (const byte of chunk) if (byte === 10) lines++;
      if (lines > 0) socket.write(reply(index).repeat(lines));
    });
  });
  await new Promise<void>((resolve) => server.listen({ port: 0, host: "127.0.0.1" }, resolve));
  return server;
}

function portOf(server: Server): number {
  return (server.address() as { port: number }).port;
}

test(`[${UNDER_TEST}] load: reply counts match the numbers the server handed out, every workload`, async () => {
  const server = await startTallyho(["--framing", "line", "--number-by", "message"]);
  let total = 0;
  try {
    const runs: Array<[string[], number]> = [
      [["--workload", "closed", "--connections", "10", "--threads", "2", "--count", "3000"], 3000],
      [["--workload", "pipelined", "--connections", "4", "--depth", "50", "--count", "5000"], 5000],
      [["--workload", "connect", "--connections", "8", "--threads", "2", "--count", "400"], 400],
    ];
    for (const [args, count] of runs) {
      const { code, report, stdout, stderr } = await load(server.port, args);
      assert.equal(code, 0, `${args.join(" ")}\n${stdout}\n${stderr}`);
      assert.ok(report);
      assert.equal(report.replies, count, `${args.join(" ")}: replies`);
      assert.equal(report.requests, count);
      assert.equal(report.stoppedBy, "count");
      assert.equal(report.check.numbered, count);
      assert.equal(report.check.distinctNumbers, count, "every reply a new number");
      assert.equal(report.check.repeats, 0);
      assert.equal(report.check.ok, true);
      assert.equal(report.latencyUs.samples, count);
      total += report.replies;
    }
  } finally {
    await server.stop();
  }
  const last = /last number handed out: (\d+)/.exec(server.output())?.[1];
  assert.equal(Number(last), total, `the server's last number; output:\n${server.output()}`);
});

test(`[${UNDER_TEST}] load: a server that repeats a number is reported loudly and exits 3`, async () => {
  // Numbers by connection, but every other connection gets 1 again: a repeat across connections.
  const server = await lineServer((connection) => `Hello World${(connection % 2) + 1}\n`);
  try {
    const { code, report, stdout } = await load(portOf(server), [
      "--connections",
      "4",
      "--threads",
      "2",
      "--count",
      "200",
    ]);
    assert.equal(code, 3, stdout);
    assert.ok(report);
    assert.ok(report.check.repeats >= 2, `repeats: ${report.check.repeats}`);
    assert.deepEqual(report.check.repeatExamples.slice(0, 1), [1]);
    assert.equal(report.check.ok, false);
    const text = await runTallyho(
      ["load", "--port", String(portOf(server)), "--connections", "4", "--count", "100"],
      LOAD_TIMEOUT_MS,
    );
    assert.equal(text.code, 3);
    assert.match(text.stdout, /REPEATED NUMBERS: \d+ replies carried a number already handed out/);
  } finally {
    server.close();
  }
});

test(`[${UNDER_TEST}] load: replies that are not numbered (Redis +PONG) are counted, not checked`, async () => {
  const server = await lineServer(() => "+PONG\r\n");
  try {
    const { code, report, stdout } = await load(portOf(server), [
      "--workload",
      "pipelined",
      "--connections",
      "3",
      "--depth",
      "10",
      "--count",
      "600",
    ]);
    assert.equal(code, 0, stdout);
    assert.ok(report);
    assert.equal(report.replies, 600);
    assert.equal(report.check.other, 600);
    assert.equal(report.check.numbered, 0);
    assert.equal(report.check.ok, true);
  } finally {
    server.close();
  }
});

test(`[${UNDER_TEST}] load: --source binds the client sockets to that local address`, async () => {
  const seen = new Set<string>();
  const server = await lineServer(() => "+PONG\r\n");
  server.on("connection", (socket: Socket) => seen.add(socket.remoteAddress ?? "?"));
  try {
    const { code, report } = await load(portOf(server), [
      "--source",
      "127.0.0.2",
      "--connections",
      "3",
      "--count",
      "30",
    ]);
    assert.equal(code, 0);
    assert.equal(report?.replies, 30);
    assert.deepEqual([...seen], ["127.0.0.2"]);
  } finally {
    server.close();
  }
});

test(`[${UNDER_TEST}] load: connect workload against a server that speaks first and closes`, async () => {
  // Like nginx's stream `return`: a line on accept, then close, whatever the client sends.
  let next = 1;
  const server = createServer((socket: Socket) => {
    socket.on("error", () => {});
    socket.end(`Hello World${next++}\n`);
  });
  await new Promise<void>((resolve) => server.listen({ port: 0, host: "127.0.0.1" }, resolve));
  try {
    const { code, report, stdout, stderr } = await load(portOf(server), [
      "--workload",
      "connect",
      "--message",
      "",
      "--connections",
      "4",
      "--count",
      "300",
    ]);
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.ok(report);
    assert.equal(report.completed, 300);
    assert.equal(report.check.distinctNumbers, 300);
    assert.equal(next - 1, 300, "exactly count connections were made");
  } finally {
    server.close();
  }
});

test(`[${UNDER_TEST}] load: nothing listening is exit code 1 with the errors counted`, async () => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen({ port: 0, host: "127.0.0.1" }, resolve));
  const port = portOf(holder);
  await new Promise<void>((resolve) => holder.close(() => resolve()));
  const { code, report } = await load(port, ["--duration", "300ms", "--connections", "2"]);
  assert.equal(code, 1);
  assert.ok(report);
  assert.equal(report.replies, 0);
  assert.ok((report.errors["ECONNREFUSED"] ?? 0) > 0, JSON.stringify(report.errors));
});

const badLoadFlags: Array<[string[], RegExp]> = [
  [["--bogus"], /^tallyho: Unknown option '--bogus' for load$/],
  [["--port", "abc"], /^tallyho: 'port' must be a whole number: got "abc"$/],
  [["--port", "70000"], /^tallyho: 'port' must be an integer from 1 to 65535: got 70000$/],
  [["--connections", "0"], /^tallyho: 'connections' must be an integer from 1 to 100000: got 0$/],
  [
    ["--workload", "burst"],
    /^tallyho: 'workload' must be one of closed, pipelined, connect, idle, hold: got "burst"$/,
  ],
  [["--rate", "100"], /^tallyho: '--rate' applies to --workload hold only: got --rate 100$/],
  [
    ["--workload", "hold", "--depth", "3"],
    /^tallyho: '--depth' does not apply to --workload hold \(see --rate, --hold, --setup-timeout\): got 3$/,
  ],
  [
    ["--workload", "hold", "--host", "127.0.0.0/8"],
    /^tallyho: 'host' block 127.0.0.0\/8 holds 16777216 addresses, more than 65536: use a \/16 or smaller$/,
  ],
  [
    ["--workload", "hold", "--source", "127.0.1.0/24,nowhere"],
    /^tallyho: 'source' must be addresses or IPv4 blocks separated by commas, e.g. 127.0.0.1 or 127.0.1.0\/24: got "nowhere"$/,
  ],

  [["--depth", "10"], /^tallyho: 'depth' applies to the pipelined workload only .*: got 10$/],
  [
    ["--duration", "soon"],
    /^tallyho: 'duration' must be a duration from 1ms to 1h such as 500ms, 10s, 5m or 1h: got "soon"$/,
  ],
  [["--source", "nowhere"], /^tallyho: 'source' must be a local IP address .*: got "nowhere"$/],
  [
    ["--workload", "pipelined", "--message", "a\\nb\\n"],
    /^tallyho: 'message' must be exactly one line .*: got 4 bytes with 2 line breaks$/,
  ],
  [["--message", "\\q"], /^tallyho: 'message' has an unknown escape .*: got "\\\\q"$/],
  [["--message", ""], /^tallyho: 'message' may be empty only for the connect workload/],
  [["--count", "1.5"], /^tallyho: 'count' must be a whole number: got "1.5"$/],
  [["--json", "extra"], /^tallyho: Unexpected argument "extra"$/],
];

for (const [args, expected] of badLoadFlags) {
  test(`[${UNDER_TEST}] load: '${args.join(" ")}' is one line naming the flag and exit code 2`, async () => {
    const { code, stdout, stderr } = await runTallyho(["load", ...args]);
    assert.equal(code, 2, `exit code; stderr:\n${stderr}`);
    const lines = stderr.trim().split("\n");
    assert.match(lines[0]!, expected);
    assert.equal(lines[1], "Run 'tallyho load --help' for usage.");
    assert.equal(lines.length, 2, stderr);
    assert.equal(stdout, "", "no run, no report");
  });
}

test(`[${UNDER_TEST}] load: --help lists every flag and the exit codes`, async () => {
  const { code, stdout } = await runTallyho(["load", "--help"]);
  assert.equal(code, 0);
  for (const flag of ["--workload", "--depth", "--duration", "--count", "--source", "--json"]) {
    assert.ok(stdout.includes(flag), flag);
  }
  assert.match(stdout, /3 the number check failed/);
  const top = await runTallyho(["--help"]);
  assert.match(top.stdout, /tallyho load \[options\]/);
});

test(`[${UNDER_TEST}] load: pipelined against a server in chunk framing fails, saying --framing line`, async () => {
  const chunk = await startTallyho(["--threads", "1"]);
  try {
    const { code, report, stdout, stderr } = await load(chunk.port, [
      "--workload",
      "pipelined",
      "--connections",
      "4",
      "--depth",
      "50",
      "--duration",
      "1s",
      "--timeout",
      "500ms",
    ]);
    assert.equal(code, 1, `replies that never come are a failed run:\n${stdout}\n${stderr}`);
    assert.ok(report, stdout);
    assert.ok((report.errors["reply_timeout"] ?? 0) > 0, JSON.stringify(report.errors));
    assert.equal(report.ok, false);
    assert.match(report.failure ?? "", /chunk framing/);
    assert.match(stderr, /requests got no reply .*probably in chunk framing.*--framing line/);
  } finally {
    await chunk.stop();
  }
  // The same run against line framing answers everything and passes.
  const line = await startTallyho(["--threads", "1", "--framing", "line"]);
  try {
    const { code, report, stdout, stderr } = await load(line.port, [
      "--workload",
      "pipelined",
      "--connections",
      "4",
      "--depth",
      "50",
      "--count",
      "4000",
      "--timeout",
      "5s",
    ]);
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.ok(report);
    assert.equal(report.ok, true);
    assert.equal(report.failure, null);
    assert.equal(report.replies, 4000);
  } finally {
    await line.stop();
  }
});
