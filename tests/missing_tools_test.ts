/**
 * A machine without the system tools the tests drive (redis-server, chromium, promtool, ...):
 * off CI the tests that need a missing tool skip with the reason and the closing summary counts
 * them and says what to install; under CI nothing may skip, so they fail instead, as before.
 * Checked on this machine by running every test file that needs a tool with a PATH that has none
 * of them (.ci/system_tools.sh's list).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { ROOT } from "./_server.ts";
import { toolMissing } from "./_tools.ts";

/** The environment without CI, or with CI=true. */
function env(ci: boolean, extra: Record<string, string> = {}): Record<string, string> {
  const copy: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && key !== "CI") copy[key] = value;
  }
  // CI is set to "" rather than left out: Deno's node:child_process (2.9.6) merges the env given
  // with its own, so a CI=true of the outer run would reach the child otherwise.
  return { ...copy, NO_COLOR: "1", CI: ci ? "true" : "", ...extra };
}

/**
 * Runs tests/_summary.sh on one bun log and one deno log, with PATH holding only the shell
 * utilities it needs (so every system tool is missing), and returns the closing line and the
 * exit status run_all.sh would have.
 */
function summarize(bunLog: string, denoLog: string, ci: boolean): { line: string; code: number } {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-summary-"));
  try {
    const bin = join(dir, "bin");
    mkdirSync(bin);
    for (const tool of ["bash", "grep", "tail", "dirname", "id", "sort", "tr", "sed", "cat"]) {
      const found = spawnSync("bash", ["-c", `command -v ${tool}`], { encoding: "utf8" });
      symlinkSync(found.stdout.trim(), join(bin, tool));
    }
    writeFileSync(join(dir, "bun.log"), bunLog);
    writeFileSync(join(dir, "deno.log"), denoLog);
    const script = `passed=0; failed=0; skipped=0
      source "${join(ROOT, "tests/_summary.sh")}"
      count_bun "${join(dir, "bun.log")}"; count_deno "${join(dir, "deno.log")}"
      summarize; echo "$line"; [ "$failed" -eq 0 ]`;
    const run = spawnSync(join(bin, "bash"), ["-c", script], {
      encoding: "utf8",
      env: env(ci, { PATH: bin }),
    });
    return { line: run.stdout.trim(), code: run.status ?? -1 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const BUN_SKIPS = "(pass) a\n(skip) b\n\n 10 pass\n 3 skip\n 0 fail\nRan 13 tests across 1 file.\n";
const DENO_SKIPS = "a ... ok (1ms)\n\nok | 9 passed | 0 failed | 2 ignored (30ms)\n";

test("run_all summary: no skips ends with exactly 'N passed, N failed'", () => {
  const { line, code } = summarize(
    " 10 pass\n 0 fail\n",
    "ok | 9 passed | 0 failed (3ms)\n",
    false,
  );
  assert.equal(line, "19 passed, 0 failed");
  assert.equal(code, 0);
});

test("run_all summary: off CI, skips are counted and the line says what to install", () => {
  const { line, code } = summarize(BUN_SKIPS, DENO_SKIPS, false);
  assert.match(line, /^19 passed, 0 failed, 5 skipped: install redis-server, chromium, promtool, /);
  assert.match(line, /with 'sudo bash \.ci\/system_tools\.sh install'/);
  assert.match(line, / to run them$/);
  assert.equal(code, 0);
});

test("run_all summary: under CI a skip is a failure", () => {
  const { line, code } = summarize(BUN_SKIPS, DENO_SKIPS, true);
  assert.match(line, /^19 passed, 1 failed, 5 skipped/);
  assert.notEqual(code, 0);
});

test("run_all summary: a failure still counts with skips", () => {
  const { line, code } = summarize(" 2 pass\n 1 skip\n 4 fail\n", "", false);
  assert.match(line, /^2 passed, 4 failed, 1 skipped/);
  assert.notEqual(code, 0);
});

test("toolMissing names the package and the install command", () => {
  assert.equal(toolMissing("bash", "bash"), null);
  assert.equal(
    toolMissing("/nonexistent/redis-server", "redis-server"),
    "/nonexistent/redis-server is not installed (apt-get install redis-server, or sudo bash .ci/system_tools.sh install)",
  );
});

/** Runs the Redis lease-source tests under Bun with no redis-server to be found. */
function redisTestsWithoutRedis(ci: boolean): string {
  const run = spawnSync(join(ROOT, "node_modules/.bin/bun"), [
    "test",
    "--timeout",
    "60000",
    "-t",
    "redis lease source",
    "tests/redis_lease_source_test.ts",
  ], {
    cwd: ROOT,
    encoding: "utf8",
    env: env(ci, { REDIS_SERVER: "/nonexistent/redis-server" }),
    timeout: 90_000,
  });
  return `${run.stdout}${run.stderr}`;
}

test("without redis-server, off CI the Redis tests skip with the reason", () => {
  const output = redisTestsWithoutRedis(false);
  // Every Redis test of the file skips (however many there are), none fails or runs.
  assert.match(output, /^ *[1-9]\d* skip$/m, output);
  assert.match(output, /^ *0 fail$/m, output);
  assert.match(output, /^ *0 pass$/m, output);
});

test("without redis-server, under CI the Redis tests fail saying what is missing", () => {
  const output = redisTestsWithoutRedis(true);
  assert.match(output, /^ *[1-9]\d* fail$/m, output);
  assert.doesNotMatch(output, /^ *[1-9]\d* skip$/m, output);
  assert.match(output, /cannot run \/nonexistent\/redis-server/, output);
});

/** The commands .ci/system_tools.sh installs: the tools a fresh machine lacks. */
function systemTools(): string[] {
  const script = readFileSync(join(ROOT, ".ci/system_tools.sh"), "utf8");
  const list = /^TOOLS=\(\n([\s\S]*?)^\)/m.exec(script)?.[1] ?? "";
  return [...list.matchAll(/"([^":]+):[^"]+"/g)].map((m) => m[1]!);
}

/**
 * The test files that need a system tool: each imports a fixture that starts or looks for one,
 * or names one of `tools` as a program. (This file is left out: it runs them.)
 */
function toolFiles(tools: string[]): string[] {
  const fixture = /from "\.\/_(tools|redis|etcd|browser|netns|certificates)\.ts"/;
  const named = new RegExp(`"(${tools.map((t) => t.replace(/[.+-]/g, "\\$&")).join("|")})"`);
  return readdirSync(join(ROOT, "tests"))
    .filter((name) => name.endsWith("_test.ts") && name !== "missing_tools_test.ts")
    .filter((name) => {
      const text = readFileSync(join(ROOT, "tests", name), "utf8");
      return fixture.test(text) || named.test(text);
    })
    .map((name) => `tests/${name}`);
}

/**
 * Files with a few tests that need a tool beside long ones that need none: only the tests whose
 * names match run with the tools hidden (the others are proven in the passes, and would take
 * the better part of a minute here). A tool test added to one of these files must match.
 */
const ONLY: Record<string, string> = {
  "tests/admin_e2e_test.ts": "promtool",
  "tests/loop_delay_e2e_test.ts": "Redis",
  "tests/upgrade_test.ts": "Redis|etcd",
};

/**
 * A directory holding a link to every command on this PATH but `hidden`: as the whole PATH, a
 * machine where those are not installed.
 */
function pathWithout(hidden: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-no-tools-"));
  const skip = new Set(hidden);
  for (const from of (process.env.PATH ?? "").split(delimiter)) {
    let names: string[];
    try {
      names = readdirSync(from);
    } catch {
      continue;
    }
    for (const name of names) {
      if (skip.has(name)) continue;
      skip.add(name); // the first on PATH wins, as a lookup would
      try {
        if (statSync(join(from, name)).isFile()) symlinkSync(join(from, name), join(dir, name));
      } catch {
        // A dangling link or a name taken: not a command to keep.
      }
    }
  }
  return dir;
}

test("with every system tool hidden and CI unset, the files that need one pass or skip: 0 failed", {
  timeout: 300_000,
}, () => {
  const tools = systemTools();
  assert.ok(tools.includes("redis-server") && tools.includes("openssl"), tools.join(" "));
  const files = toolFiles(tools);
  assert.ok(files.length >= 10, `tool files: ${files.join(" ")}`);
  const bin = pathWithout(tools);
  try {
    const vars = env(false, {
      PATH: bin,
      TALLYHO_TARGET: "bun",
      TALLYHO_CHROMIUM: "/nonexistent/chromium",
      TALLYHO_LIBFAKETIME: "/nonexistent/libfaketimeMT.so.1",
    });
    for (const name of ["REDIS_SERVER", "ETCD", "ETCDCTL", "TALLYHO_BIN"]) delete vars[name];
    // One runner for the files whose every test may need a tool, one per file that has a few
    // such tests beside long ones that need none (only those few run).
    const whole = files.filter((file) => !(file in ONLY));
    const runs = [
      whole,
      ...files.filter((file) => file in ONLY).map((file) => ["-t", ONLY[file]!, file]),
    ].map((args) =>
      spawnSync(join(ROOT, "node_modules/.bin/bun"), ["test", "--timeout", "60000", ...args], {
        cwd: ROOT,
        encoding: "utf8",
        env: vars,
        timeout: 300_000,
      })
    );
    const output = runs.map((run) => `${run.stdout}${run.stderr}`).join("\n");
    const total = (word: string) =>
      [...output.matchAll(new RegExp(`^ *(\\d+) ${word}$`, "gm"))].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );
    console.log(
      `tools hidden (${tools.join(", ")}): ${files.length} files, ` +
        `${total("pass")} passed, ${total("skip")} skipped, ${total("fail")} failed`,
    );
    assert.equal(total("fail"), 0, output);
    assert.ok(total("skip") > 0, "nothing skipped: were the tools hidden?");
    assert.deepEqual(runs.map((run) => run.status), runs.map(() => 0), output);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
