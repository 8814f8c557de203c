/**
 * tests/passes.txt, which says where `npm test` runs each test file: every line is one the plan
 * understands, every test file is planned, and the plan runs each where its line says; and the
 * target a run chooses (tests/_target.ts).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { ROOT } from "./_server.ts";

/** Runs tests/_passes.sh's plan_passes on `manifest` (a path from the root). */
function plan(manifest: string, skipBinary = false): { lines: string[]; errors: string } {
  const run = spawnSync("bash", [
    "-c",
    `source tests/_passes.sh && plan_passes "${manifest}" ${skipBinary}`,
  ], { cwd: ROOT, encoding: "utf8" });
  return { lines: run.stdout.trim().split("\n"), errors: `${run.stderr}${run.status ? "!" : ""}` };
}

test("passes: tests/passes.txt is read without a problem and plans every test file", () => {
  const { lines, errors } = plan("tests/passes.txt");
  assert.equal(errors, "");
  const files = readdirSync(join(ROOT, "tests")).filter((name) => name.endsWith("_test.ts"));
  const planned = new Set(lines.map((line) => line.split(" ")[2]!));
  assert.deepEqual(files.filter((name) => !planned.has(`tests/${name}`)), []);
  for (const line of lines) {
    assert.match(line, /^(bun|deno|binary|release) (solo|shared) tests\/\S+_test\.ts/);
  }
});

test("passes: both runs under bun and deno, once under bun only, deno under deno only; binary adds the smoke set", () => {
  const { lines } = plan("tests/passes.txt");
  const where = (file: string) =>
    lines.filter((line) => line.split(" ")[2] === `tests/${file}`).map((line) =>
      line.split(" ").slice(0, 2).join(" ") + (line.split(" ").length > 3 ? " -t" : "")
    );
  assert.deepEqual(where("numbering_test.ts"), ["bun shared", "deno shared", "binary shared"]);
  assert.deepEqual(where("docs_test.ts"), ["bun shared"]);
  assert.deepEqual(where("deno_buffers_test.ts"), ["deno shared"]);
  assert.deepEqual(where("upgrade_test.ts"), ["bun solo", "deno solo", "binary solo -t"]);
  assert.deepEqual(where("release_lifecycle_test.ts"), ["release solo"]);
  assert.ok(lines.some((line) => line.startsWith("binary ")));
  assert.ok(!plan("tests/passes.txt", true).lines.some((line) => line.startsWith("binary ")));
});

test("passes: a line naming no test file, an unknown word or a file listed twice is reported", () => {
  const run = spawnSync("bash", [
    "-c",
    `source tests/_passes.sh && plan_passes /dev/stdin false`,
  ], {
    cwd: ROOT,
    encoding: "utf8",
    input: "# a comment\nnowhere_test.ts both\ndocs_test.ts sometimes\n" +
      "cli_test.ts both fast\nlayers_test.ts once\nlayers_test.ts once\n",
  });
  assert.equal(run.status, 1);
  assert.match(run.stderr, /:2: nowhere_test\.ts is no test file/);
  assert.match(
    run.stderr,
    /:3: docs_test\.ts: the second word must be both, once, deno or release/,
  );
  assert.match(run.stderr, /:4: cli_test\.ts: unknown word "fast"/);
  assert.match(run.stderr, /:6: layers_test\.ts is listed twice/);
  // A file it does not list runs in bun and deno, solo; the others still as listed.
  assert.match(run.stdout, /^bun solo tests\/docs_test\.ts$/m);
  assert.match(run.stdout, /^bun shared tests\/layers_test\.ts$/m);
  assert.doesNotMatch(run.stdout, /^deno \S+ tests\/layers_test\.ts$/m);
});

/** What tests/_target.ts decides under `env`, in a Bun process: the target and runtime, or why not. */
function targetUnder(env: Record<string, string>): string {
  const script =
    'import("./tests/_target.ts").then((t) => console.log(t.TARGET, t.SOURCE_RUNTIME, t.BINARY),' +
    " (e) => console.log(e.message))";
  // Empty rather than left out: Deno's node:child_process (2.9.6) merges its own environment
  // into the one given (see missing_tools_test.ts), and _target.ts reads empty as unset.
  const run = spawnSync(join(ROOT, "node_modules/.bin/bun"), ["-e", script], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, TALLYHO_TARGET: "", TALLYHO_BIN: "", ...env },
  });
  return run.stdout.trim();
}

test("target: chosen by TALLYHO_TARGET, by default the runner's own; a wrong or contradictory one is refused", () => {
  assert.equal(targetUnder({}), "bun bun null");
  assert.equal(targetUnder({ TALLYHO_TARGET: "deno" }), "deno deno null");
  assert.equal(targetUnder({ TALLYHO_BIN: "/opt/tallyho" }), "binary bun /opt/tallyho");
  assert.equal(
    targetUnder({ TALLYHO_TARGET: "binary", TALLYHO_BIN: "/opt/tallyho" }),
    "binary bun /opt/tallyho",
  );
  assert.equal(
    targetUnder({ TALLYHO_TARGET: "node" }),
    'TALLYHO_TARGET must be bun, deno or binary: got "node"',
  );
  assert.equal(
    targetUnder({ TALLYHO_TARGET: "bun", TALLYHO_BIN: "/opt/tallyho" }),
    'TALLYHO_BIN is set (/opt/tallyho) but TALLYHO_TARGET is "bun": unset one of them',
  );
});
