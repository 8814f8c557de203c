/**
 * The supervisor's descriptors under a flood of idle admin connections: the admin API caps its
 * connections and closes those that send nothing, and the state file keeps being written, so
 * every client is numbered. Driven by Python's standard library, which shares no code with the
 * server, under a low open-file limit (`prlimit`).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { adminConnectionCaps } from "../server/adapters/mod.ts";
import { readStateFile } from "../server/lease/sources/state_file/state_file.ts";
import { python } from "./_python.ts";
import { startTallyho } from "./_server.ts";

// Holds IDLE connections to the admin port (never a byte), then drives CONNS connections of
// LINES pipelined lines at the service port and reads every reply; reports what it got and,
// after WAIT seconds, how many of the idle connections the server had closed.
const FLOOD_THEN_SERVE = `
import json, socket, sys, time
admin, service, idle, conns, lines, wait = map(int, sys.argv[1:7])
held = []
for _ in range(idle):
    try:
        held.append(socket.create_connection(("127.0.0.1", admin), timeout=5))
    except OSError:
        pass
time.sleep(1)
numbers = []
short = 0
for _ in range(conns):
    s = socket.create_connection(("127.0.0.1", service), timeout=15)
    s.sendall(b"x\\n" * lines)
    buf = b""
    try:
        while buf.count(b"\\n") < lines:
            d = s.recv(1 << 16)
            if not d:
                break
            buf += d
    except OSError:
        pass
    s.close()
    got = [l for l in buf.split(b"\\n") if l]
    short += lines - len(got)
    numbers += [int(l[len(b"Hello World"):]) for l in got]
time.sleep(wait)
closed = 0
for s in held:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            closed += 1
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
    s.close()
print(json.dumps({"held": len(held), "replies": len(numbers), "short": short,
                  "distinct": len(set(numbers)), "max": max(numbers) if numbers else 0,
                  "closed": closed}))
`;

test("admin connections without a token cannot stop leasing: 400 idle ones under a 300-file limit", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-adminfd-"));
  const state = join(dir, "state");
  const server = await startTallyho(
    ["--state", state, "--threads", "1", "--framing", "line", "--number-by", "message"],
    { wrap: ["prlimit", "--nofile=300"] },
  );
  try {
    const adminPort = Number(new URL(server.adminUrl!).port);
    const conns = 8;
    const lines = 6000;
    // 400 idle connections: more than the supervisor's 300 descriptors.
    const result = await python(
      FLOOD_THEN_SERVE,
      [adminPort, server.port, 400, conns, lines, 7].map(String),
      90_000,
    ) as {
      held: number;
      replies: number;
      short: number;
      distinct: number;
      max: number;
      closed: number;
    };
    const output = server.output();
    assert.doesNotMatch(output, /cannot lease/, "no lease failed");
    assert.equal(result.short, 0, `every message was answered: ${JSON.stringify(result)}`);
    assert.equal(result.replies, conns * lines);
    assert.equal(result.distinct, conns * lines, "no number repeated");
    assert.equal(result.held, 400, "the client opened all 400 (the kernel queues them)");
    assert.equal(
      result.closed,
      400,
      `every idle connection was closed (made room for a newer one or timed out after 5 s): ${
        JSON.stringify(result)
      }`,
    );
    assert.match(output, /admin API: closed \d+ connection\(s\) without a complete request/);
    const response = await server.admin("/v1/stats");
    assert.equal(response.status, 200, "the admin API answers a token holder afterwards");
    await response.body?.cancel();
    assert.ok(readStateFile(state)! > result.max, "the state file is above every number given");
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("adminConnectionCaps stays at most 64 relayed and 1024 in each reading pool, and leaves 128 descriptors besides 3 per relayed and 1 per other", () => {
  assert.deepEqual(adminConnectionCaps(1_048_576), { relayed: 64, reading: 1024 });
  assert.deepEqual(adminConnectionCaps(2368), { relayed: 64, reading: 1024 });
  assert.deepEqual(adminConnectionCaps(1024), { relayed: 64, reading: 352 });
  assert.deepEqual(adminConnectionCaps(300), { relayed: 34, reading: 35 });
  assert.deepEqual(adminConnectionCaps(128 + 5 * 10), { relayed: 10, reading: 10 });
  for (const files of [133, 150, 300, 500, 1024, 4096]) {
    const { relayed, reading } = adminConnectionCaps(files);
    assert.ok(3 * relayed + 2 * reading <= files - 128, `${files}: ${relayed} and ${reading}`);
  }
  assert.deepEqual(
    adminConnectionCaps(100),
    { relayed: 1, reading: 1 },
    "at least one, so the API still answers",
  );
});
