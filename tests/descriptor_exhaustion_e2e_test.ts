/**
 * End to end: a serving process that runs out of file descriptors (its limit lowered under it
 * with `prlimit --pid`, then taken up by held connections) refuses each new connection at once,
 * counted as rejected `no_descriptors`, instead of leaving it in the accept queue until the
 * client times out; its report each second survives (no uncaught `SystemError: Failed to get
 * memory usage` every second); and once connections close it serves new ones again. Driven by
 * Python's standard library, which shares no code with the server; every number it is answered
 * with is distinct.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { python } from "./_python.ts";
import { startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";

// Opens CONNS connections at once, sends a line on each and waits up to WAIT s for every one to
// be answered or closed; keeps those answered open. Then closes them all and polls (every 100
// ms, up to 15 s) until a new connection is answered, and opens AFTER more.
const EXHAUST = `
import json, selectors, socket, sys, time
port, conns, wait, after = map(int, sys.argv[1:5])
sel = selectors.DefaultSelector()
numbers, served, closed, hung, failed = [], [], 0, 0, 0
for _ in range(conns):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"x\\n")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, bytearray())
    except OSError:
        failed += 1
deadline = time.monotonic() + wait
while sel.get_map() and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=0.1):
        s, buf = key.fileobj, key.data
        try:
            chunk = s.recv(100)
        except OSError:
            chunk = b""
        if not chunk:
            closed += 1
            sel.unregister(s)
            s.close()
            continue
        buf += chunk
        if buf.endswith(b"\\n"):
            numbers.append(int(bytes(buf).strip()[len(b"Hello World"):]))
            sel.unregister(s)
            served.append(s)
hung = len(sel.get_map())
for key in list(sel.get_map().values()):
    key.fileobj.close()
for s in served:
    s.close()
refused_asks = 0
def ask():
    global refused_asks
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"x\\n")
            line = s.makefile("rb").readline()
            if line.startswith(b"Hello World"):
                return int(line.strip()[len(b"Hello World"):])
    except OSError:
        pass
    refused_asks += 1
    return None
started = time.monotonic()
first = None
while first is None and time.monotonic() - started < 15:
    first = ask()
    if first is None:
        time.sleep(0.1)
recovered_s = round(time.monotonic() - started, 2)
later = [ask() for _ in range(after)]
numbers += [n for n in [first, *later] if n is not None]
print(json.dumps({"served": len(served), "closed": closed, "hung": hung, "failed": failed,
                  "refused_asks": refused_asks,
                  "recovered_s": recovered_s if first is not None else None,
                  "later_served": sum(n is not None for n in later),
                  "numbers": len(numbers), "distinct": len(set(numbers))}))
`;

const skipPrlimit = skipOffCi(toolMissing("prlimit", "util-linux"));

/** Descriptors a process has open now. */
function openDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

test(
  `[${UNDER_TEST}] a serving process out of descriptors refuses new connections at once (counted), survives its report, and serves again once some close`,
  {
    skip: skipPrlimit,
  },
  async () => {
    let server: TestServer | null = null;
    try {
      server = await startTallyho(["--threads", "1", "--framing", "line"]);
      const child = server.childPids().get(0)!;
      // Room for 24 connections beyond what the process holds now (its reserve included).
      const limit = openDescriptors(child) + 24;
      execFileSync("prlimit", ["--pid", String(child), `--nofile=${limit}:${limit}`]);
      const from = server.output().length;
      const result = await python(EXHAUST, [server.port, 60, 5, 10].map(String), 60_000) as {
        served: number;
        closed: number;
        hung: number;
        failed: number;
        recovered_s: number | null;
        later_served: number;
        refused_asks: number;
        numbers: number;
        distinct: number;
      };
      // The report each second: read again once descriptors are free.
      await new Promise((resolve) => setTimeout(resolve, 1200));
      const stats = await (await server.admin("/v1/stats")).json();
      const refused = stats.processes[0].threads.reduce(
        (sum: number, thread: { rejectedNoDescriptors: number }) =>
          sum + thread.rejectedNoDescriptors,
        0,
      );
      const metrics = await (await server.admin("/metrics")).text();
      const output = server.output().slice(from);
      console.log(
        `out of descriptors (limit ${limit}): ${JSON.stringify(result)}; counted ${refused}`,
      );
      assert.equal(
        result.hung,
        0,
        `connections left waiting: ${JSON.stringify(result)}\n${output}`,
      );
      assert.ok(result.served >= 8, `some were served before the limit: ${JSON.stringify(result)}`);
      assert.ok(result.closed > 0, `the rest were refused: ${JSON.stringify(result)}`);
      assert.equal(result.served + result.closed + result.failed, 60);
      assert.equal(refused, result.closed + result.refused_asks, "each refusal is counted");
      assert.match(
        metrics,
        new RegExp(
          `^tallyho_connections_rejected_total\\{[^}]*reason="no_descriptors"[^}]*\\} ${refused}$`,
          "m",
        ),
      );
      assert.ok(result.recovered_s !== null, `never served again: ${JSON.stringify(result)}`);
      assert.equal(result.later_served, 10, "served again once connections closed");
      assert.equal(result.distinct, result.numbers, "no number twice");
      assert.match(output, /out of file descriptors: new connections are closed at once/);
      assert.match(output, /file descriptors free again: serving new connections \(\d+ refused\)/);
      assert.doesNotMatch(output, /SystemError|^\s+at /m, "nothing uncaught");
      assert.ok(
        (output.match(/out of file descriptors: /g) ?? []).length <= 2,
        `said once (or twice at most), not every second:\n${output}`,
      );
      assert.equal(await server.stop(), 0, output);
    } finally {
      await server?.stop("SIGKILL");
    }
  },
);
