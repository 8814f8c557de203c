/**
 * The comparison harness in its quick mode: it starts the servers, drives them and writes a
 * report with figures for each. Speed is not asserted; only that every figure is there.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT, UNDER_TEST } from "./_server.ts";
import type { CompareResults } from "../bench/compare/results.ts";
import { toolMissing } from "./_tools.ts";

// With a C compiler the harness drives with its native client; without, with `tallyho load`.
const DRIVER = toolMissing("cc", "gcc") === null ? "native" : "tallyho-load";

function runCompare(args: string[]): Promise<{ code: number | string; output: string }> {
  const child = spawn(join(ROOT, "node_modules/.bin/bun"), [
    join(ROOT, "bench/compare/compare.ts"),
    ...args,
  ], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  // SIGTERM, so the harness stops the servers it started.
  const timer = setTimeout(() => child.kill("SIGTERM"), 90_000);
  return new Promise((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? "unknown", output });
    })
  );
}

test(`[${UNDER_TEST}] compare --quick measures bare Bun and tallyho on Bun on every workload`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-compare-test-"));
  try {
    const out = join(dir, "RESULTS.md");
    const { code, output } = await runCompare(["--quick", "--out", out]);
    assert.equal(code, 0, output);
    assert.ok(existsSync(out), "the Markdown report");
    const results = JSON.parse(readFileSync(join(dir, "RESULTS.json"), "utf8")) as CompareResults;
    assert.equal(results.mode, "quick");
    assert.deepEqual(results.servers.map((s) => s.name), ["bare-bun", "tallyho-bun"]);
    assert.deepEqual(results.skipped, []);
    assert.equal(results.settings.driver, DRIVER, "the driver the harness says it used");
    for (const server of ["bare-bun", "tallyho-bun"]) {
      for (const workload of ["closed", "pipelined", "connect"] as const) {
        const runs = results.measurements.filter((m) =>
          m.server === server && m.workload === workload
        );
        assert.equal(runs.length, 1, `${server} ${workload}: one round`);
        const run = runs[0]!;
        const figure = workload === "connect" ? run.connectionsPerSecond : run.repliesPerSecond;
        assert.ok(figure > 0, `${server} ${workload}: a figure`);
        assert.ok(run.checkOk, `${server} ${workload}: numbers checked out`);
        assert.ok(run.serverCpu > 0, `${server} ${workload}: server CPU measured`);
        assert.ok(run.serverCpuUsPerReply > 0, `${server} ${workload}: server CPU per reply`);
        if (server === "tallyho-bun") {
          // Read from tallyho's admin API; the size of the delay is not asserted.
          const delay = run.loopDelay;
          assert.ok(delay, `${server} ${workload}: event-loop delay read`);
          assert.ok(delay.reads > 0 && delay.maxMs >= delay.p99Ms && delay.p99Ms >= 0);
        } else {
          assert.equal(run.loopDelay, null, `${server} ${workload}: no admin API to read`);
        }
      }
      const memory = results.memory.find((m) => m.server === server);
      assert.ok(memory && memory.connections > 0, `${server}: memory measured`);
      assert.ok(memory.loadedRssBytes > 0 && memory.idleRssBytes > 0);
    }
    const markdown = readFileSync(out, "utf8");
    assert.match(markdown, /## Answers/);
    assert.match(markdown, /\| tallyho-bun \| [\d,]+/, "tallyho's row has a figure");
    assert.match(markdown, /\| bare-bun \| [\d,]+/, "bare Bun's row has a figure");
    assert.match(markdown, /2 cores|\d+ cores/);
    assert.match(markdown, /\| tallyho-bun \| [\d,]+[^|]*\| \d+\.\d\d us \|/, "CPU per reply");
    if (DRIVER === "native") assert.match(markdown, /Driver: the native client/);
    assert.match(
      markdown,
      /### Event-loop delay under load[^]*\| tallyho-bun \| [\d.]+ ms \/ [\d.]+ ms \| [\d.]+ ms \/ [\d.]+ ms \| [\d.]+ ms \/ [\d.]+ ms \|/,
      "tallyho's event-loop delay p99 / max on every workload",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
