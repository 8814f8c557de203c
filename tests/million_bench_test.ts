/**
 * bench/million.ts refuses, with one line saying why, to start what this host cannot hold, before
 * it starts any process.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "./_server.ts";

const IS_BUN = "Bun" in globalThis;

test("million bench: far more connections than the host holds is refused with the reason, exit 2", () => {
  const runtime = IS_BUN ? [] : ["run", "-A"];
  const run = spawnSync(process.execPath, [
    ...runtime,
    join(ROOT, "bench/million.ts"),
    "--binary",
    "/nonexistent/tallyho",
    "--connections",
    "50000000",
    "--preflight",
  ], { encoding: "utf8", timeout: 60_000 });
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /^bench\/million: refusing to start: .+/);
  assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
});
