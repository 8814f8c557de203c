/**
 * The million-connection benchmark in small: 20,000 connections (fewer where the open-file limit is
 * lower) held at once over 4 serving processes by `tallyho load --workload hold` in 4 client
 * processes from 6 source addresses. Every connection must be answered twice (on connect and
 * after the hold), no number may repeat across all of them and the fresh clients, and none may
 * be refused. An independent Python client holds connections at the same time; its numbers
 * must be its own and none of the holders'. The server tree's RSS per connection is printed.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readHostFacts } from "../server/host/host_facts.ts";
import { python } from "./_python.ts";
import { runTallyho, startTallyho, UNDER_TEST } from "./_server.ts";

// As many as one process may have open files here (20,000), so no single process could hold them;
// more only make the run longer (60,000 took 50 s on Bun), the figures for a million are
// bench/million.ts's.
const CONNECTIONS = 20_000;
/**
 * The client addresses: a /29 per target, so the three runs of npm test share no client ports
 * (a run's closed connections keep theirs in TIME_WAIT for a minute).
 */
const SOURCE = { bun: "127.0.2.0/29", deno: "127.0.3.0/29", binary: "127.0.4.0/29" }[UNDER_TEST];
const SERVER_PROCESSES = 4;
const CLIENT_PROCESSES = 4;
const PYTHON_CONNECTIONS = 200;
const PROBES = 100;

// Holds its connections, waits, asks each again; prints every number it was given.
const PYTHON_HOLDER = `
import json, socket, sys, time
port, count, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def ask(s):
    s.sendall(b"PING\\n")
    line = b""
    while not line.endswith(b"\\n"):
        chunk = s.recv(64)
        if not chunk:
            return None
        line += chunk
    text = line.decode().strip()
    return int(text[len("Hello World"):]) if text.startswith("Hello World") else None
socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]
first = [ask(s) for s in socks]
time.sleep(hold)
second = [ask(s) for s in socks]
for s in socks:
    s.close()
print(json.dumps({"first": first, "second": second}))
`;

test(`hold e2e (${UNDER_TEST}): connections over ${SERVER_PROCESSES} server and ${CLIENT_PROCESSES} client processes are each answered twice, no repeats, none refused`, async () => {
  const openFiles = readHostFacts().openFiles;
  const connections = Math.min(CONNECTIONS, CLIENT_PROCESSES * (openFiles - 512));
  const dir = mkdtempSync(join(tmpdir(), "tallyho-hold-"));
  const server = await startTallyho([
    "--processes",
    String(SERVER_PROCESSES),
    "--threads",
    "1",
    "--number-by",
    "message",
    "--idle-timeout",
    "0",
    "--admin",
    "off",
  ]);
  try {
    const pythonRun = python(
      PYTHON_HOLDER,
      [String(server.port), String(PYTHON_CONNECTIONS), "4"],
      60_000,
    ) as Promise<{ first: Array<number | null>; second: Array<number | null> }>;
    const numbersFile = join(dir, "numbers.txt");
    const run = await runTallyho([
      "load",
      "--workload",
      "hold",
      "--port",
      String(server.port),
      "--source",
      SOURCE,
      "--connections",
      String(connections),
      "--per-process",
      String(Math.ceil(connections / CLIENT_PROCESSES)),
      "--rate",
      "0",
      "--hold",
      "2s",
      "--timeout",
      "30s",
      "--probes",
      String(PROBES),
      "--server-pid",
      String(server.pid),
      "--numbers-out",
      numbersFile,
      "--json",
    ], 110_000);
    assert.equal(run.code, 0, `hold failed:\n${run.stdout}\n${run.stderr}`);
    const report = JSON.parse(run.stdout);
    assert.equal(report.processes, CLIENT_PROCESSES);
    assert.equal(report.held, connections);
    assert.equal(report.askedAgain, connections);
    assert.equal(report.answeredAgain, connections);
    assert.deepEqual(report.errors, {});
    assert.equal(report.check.repeats, 0);
    assert.equal(report.check.ok, true);
    assert.equal(report.probes.answered, PROBES);
    assert.deepEqual(report.probes.failed, {});
    // Numbered by message: two numbers per held connection, one per fresh client.
    assert.equal(report.check.distinctNumbers, 2 * connections + PROBES);
    const held = readFileSync(numbersFile, "utf8").trim().split("\n").map(Number);
    assert.equal(held.length, 2 * connections + PROBES);

    const independent = await pythonRun;
    const theirs = [...independent.first, ...independent.second];
    assert.ok(theirs.every((n) => typeof n === "number" && n > 0), JSON.stringify(theirs));
    assert.equal(new Set(theirs).size, 2 * PYTHON_CONNECTIONS, "the Python client saw a repeat");
    const heldSet = new Set(held);
    const shared = theirs.filter((n) => heldSet.has(n as number));
    assert.deepEqual(shared, [], "numbers given to both the Python client and the holders");

    const code = await server.stop();
    assert.equal(code, 0);
    assert.match(server.output(), /refused and closed: \{\}/, server.output());
    // The tree's anonymous memory is read beside its RSS, and the highest reading while opening.
    const { serverAnonPeakBytes, serverRssPeakBytes, serverRssMaxOpeningBytes } = report.memory;
    assert.ok((serverAnonPeakBytes ?? 0) > 0, JSON.stringify(report.memory));
    assert.ok(serverAnonPeakBytes! < serverRssPeakBytes!, JSON.stringify(report.memory));
    assert.ok((serverRssMaxOpeningBytes ?? 0) > 0, JSON.stringify(report.memory));
    console.log(
      `hold e2e (${UNDER_TEST}): ${connections} connections in ${report.establishMs} ms ` +
        `(${report.setupRate}/s); server tree RSS ${report.memory.serverRssPerConnection} ` +
        `bytes per connection over ${report.memory.serverProcesses} processes; kernel slab ` +
        `${report.memory.slabPerConnection} bytes per connection (both ends); fresh clients ` +
        `p50 ${report.probes.latencyUs.p50} us, p99 ${report.probes.latencyUs.p99} us`,
    );
  } finally {
    await server.stop("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
