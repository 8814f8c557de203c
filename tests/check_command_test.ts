/**
 * `tallyho check` (issue 13): validates a configuration the way `serve` would before it starts,
 * addresses and number source included, prints the resolved configuration and exits 0 or 2
 * with one line, like `nginx -t`. It changes nothing: no state file, no token file.
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { freePort } from "./_ports.ts";
import { runTallyho, startTallyho, UNDER_TEST } from "./_server.ts";

function inDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-check-"));
  return body(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

function oneLine(stderr: string, expected: RegExp): void {
  const lines = stderr.trim().split("\n");
  assert.match(lines[0]!, expected, stderr);
  assert.ok(lines.length <= 2, `more than an error and a hint:\n${stderr}`);
  assert.doesNotMatch(stderr, /^\s+at /m, "no stack trace");
}

test(`[${UNDER_TEST}] check --config: a valid file prints the resolved configuration, exit 0, and creates nothing`, async () => {
  await inDir(async (dir) => {
    const config = join(dir, "tallyho.json");
    const state = join(dir, "numbers.state");
    const [port, adminPort] = [await freePort(), await freePort()];
    writeFileSync(
      config,
      JSON.stringify({
        host: "127.0.0.1",
        port,
        threads: 2,
        framing: "line",
        "idle-timeout": "5m",
        state,
        admin: `127.0.0.1:${adminPort}`,
      }),
    );
    const { code, stdout, stderr } = await runTallyho([
      "check",
      "--config",
      config,
      "--threads",
      "1",
    ]);
    assert.equal(code, 0, stderr);
    const resolved = JSON.parse(stdout) as Record<string, unknown>;
    assert.equal(resolved.port, port);
    assert.equal(resolved.threads, 1, "a flag over the file");
    assert.equal(resolved.framing, "line");
    assert.equal(resolved["idle-timeout"], "300s");
    assert.equal(resolved["number-by"], "connection", "defaults filled in");
    assert.equal(resolved.admin, `127.0.0.1:${adminPort}`);
    assert.match(
      stderr,
      /^tallyho check: ok: .*can be bound; numbers: state file .* \(to be created/m,
    );
    assert.ok(!existsSync(state), "check writes no state file");
  });
});

test(`[${UNDER_TEST}] check --quiet: one line, the verdict with its warnings folded in, and no configuration (a unit's ExecStartPre)`, async () => {
  await inDir(async (dir) => {
    const config = join(dir, "tallyho.json");
    // A warning: more threads than this host's cores can use are clamped.
    writeFileSync(config, JSON.stringify({ host: "127.0.0.1", port: 0, threads: 256 }));
    const loud = await runTallyho(["check", "--config", config, "--admin", "127.0.0.1:0"]);
    assert.equal(loud.code, 0, loud.stderr);
    const warnings = loud.stderr.split("\n").filter((line) => line.includes("warning: "));
    // (A host of 64 cores or more takes 256 threads without a warning.)
    const quiet = await runTallyho([
      "check",
      "--quiet",
      "--config",
      config,
      "--admin",
      "127.0.0.1:0",
    ]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stdout, "", "no resolved configuration");
    const lines = quiet.stderr.trim().split("\n");
    assert.equal(lines.length, 1, quiet.stderr);
    assert.match(lines[0]!, /^tallyho check: ok: 127\.0\.0\.1:0 and the admin API's /);
    if (warnings.length > 0) assert.match(lines[0]!, /; warnings: /);
    for (const warning of warnings) {
      assert.ok(lines[0]!.includes(warning.replace(/^tallyho check: warning: /, "")), warning);
    }
    const bad = await runTallyho(["check", "--quiet", "--port", "70000"]);
    assert.equal(bad.code, 2);
    oneLine(bad.stderr, /'port' must be an integer from 0 to 65535: got 70000/);
  });
});

test(`[${UNDER_TEST}] check: a mistake anywhere is one line and exit 2`, async () => {
  await inDir(async (dir) => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, `{\n  "port": 9000,\n}\n`);
    let result = await runTallyho(["check", "--config", bad]);
    assert.equal(result.code, 2, result.stderr);
    oneLine(result.stderr, /is not valid JSON at line 3, column 1: a trailing comma/);
    assert.equal(result.stdout, "");

    result = await runTallyho(["check", "--drain-timeout", "2h"]);
    assert.equal(result.code, 2, result.stderr);
    oneLine(result.stderr, /'drain-timeout' must be a duration from 0s to 1h .*got "2h"/);

    // A port in use: for a check that is an answer (2), not a failure to serve (1).
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen({ port: 0, host: "127.0.0.1" }, resolve));
    const port = (holder.address() as { port: number }).port;
    try {
      result = await runTallyho(["check", "--host", "127.0.0.1", "--port", String(port)]);
      assert.equal(result.code, 2, result.stderr);
      oneLine(result.stderr, new RegExp(`127\\.0\\.0\\.1:${port}: the address is in use .*--port`));
      result = await runTallyho(["check", "--port", "0", "--admin", `127.0.0.1:${port}`]);
      assert.equal(result.code, 2, result.stderr);
      oneLine(result.stderr, /the address is in use .*--admin/);
    } finally {
      holder.close();
    }

    // A state file held by a running server (its kernel lock; a pid in a lock file alone no
    // longer holds anything).
    const state = join(dir, "held.state");
    const stateHolder = await startTallyho(["--threads", "1", "--admin", "off", "--state", state]);
    try {
      result = await runTallyho(["check", "--port", "0", "--admin", "off", "--state", state]);
      assert.equal(result.code, 2, result.stderr);
      oneLine(result.stderr, /State file .* is in use by another tallyho/);
    } finally {
      assert.equal(await stateHolder.stop(), 0);
    }

    result = await runTallyho([
      "check",
      "--port",
      "0",
      "--admin",
      "off",
      "--state",
      join(dir, "no-such-dir", "x.state"),
    ]);
    assert.equal(result.code, 2, result.stderr);
    oneLine(
      result.stderr,
      /cannot be created: .*no-such-dir: no such file or directory \(ENOENT\)$/,
    );

    // A new state file in a directory other users can write: refused as serve would refuse it.
    const shared = join(dir, "shared");
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    result = await runTallyho([
      "check",
      "--port",
      "0",
      "--admin",
      "off",
      "--state",
      join(shared, "x.state"),
    ]);
    assert.equal(result.code, 2, result.stderr);
    oneLine(result.stderr, /shared.*(writ|other users)/);

    const unreachable = await freePort();
    result = await runTallyho([
      "check",
      "--port",
      "0",
      "--admin",
      "off",
      "--numbers",
      `redis://127.0.0.1:${unreachable}/0?key=k`,
    ]);
    assert.equal(result.code, 2, result.stderr);
    oneLine(result.stderr, new RegExp(`127\\.0\\.0\\.1:${unreachable}`));
  });
});
