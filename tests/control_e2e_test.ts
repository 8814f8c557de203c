/**
 * `--pid-file` and `tallyho reload|stop|upgrade --pid-file FILE` (issue 26, item 2): the server
 * is found by its pid file, through an upgrade too, and each command says what happened.
 *
 * @module
 */

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { ADMIN_TOKEN, isAlive, runTallyho, startTallyho, UNDER_TEST } from "./_server.ts";
import { waitUntil } from "./_wait.ts";

test(`[${UNDER_TEST}] control: --pid-file names the supervisor; reload says applied or refused and why, upgrade moves the file to the new supervisor, stop waits for the exit and removes it`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-control-"));
  const pidFile = join(dir, "tallyho.pid");
  const config = join(dir, "tallyho.json");
  writeFileSync(config, JSON.stringify({ greeting: "first " }));
  const server = await startTallyho(["--config", config, "--pid-file", pidFile]);
  try {
    assert.equal(readFileSync(pidFile, "utf8"), `${server.pid}\n`);
    const env = {
      ...process.env,
      TALLYHO_ADMIN_TOKEN: ADMIN_TOKEN,
      TALLYHO_ADMIN_ADDRESS: new URL(server.adminUrl!).host,
    };
    const control = (command: string) =>
      runTallyho([command, "--pid-file", pidFile, "--timeout", "60s"], 70_000, env);

    writeFileSync(config, JSON.stringify({ greeting: "second " }));
    let run = await control("reload");
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), `tallyho: reloaded (pid ${server.pid})`);

    writeFileSync(config, "{ not json");
    run = await control("reload");
    assert.equal(run.code, 1, run.stdout);
    assert.match(
      run.stderr,
      new RegExp(`^tallyho: reload refused \\(pid ${server.pid}\\): .*not valid JSON`),
    );
    writeFileSync(config, JSON.stringify({ greeting: "second " }));

    run = await control("upgrade");
    assert.equal(run.code, 0, run.stderr);
    const upgraded = new RegExp(`^tallyho: upgraded: pid ${server.pid} -> (\\d+)$`).exec(
      run.stdout.trim(),
    );
    assert.ok(upgraded, run.stdout);
    const next = Number(upgraded[1]);
    assert.equal(readFileSync(pidFile, "utf8"), `${next}\n`, "the file names the new supervisor");
    await server.exited; // the old one drains and exits; it leaves the new one's file alone
    assert.equal(readFileSync(pidFile, "utf8"), `${next}\n`);

    run = await control("stop");
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), `tallyho: stopped (pid ${next})`);
    assert.ok(!isAlive(next));
    await waitUntil(() => !existsSync(pidFile), { what: "the pid file removed on stop" });

    // Nothing to address: one line, exit 1; a stale file the same.
    run = await control("reload");
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^tallyho: no server pid in \S+tallyho\.pid \(is one running/);
    writeFileSync(pidFile, `${next}\n`);
    run = await control("stop");
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`names pid ${next}, which is not running`));
    // Without --pid-file: a usage error.
    run = await runTallyho(["stop"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /needs --pid-file FILE/);
  } finally {
    await server.stop("SIGKILL");
    const pid = Number(readFileSync(pidFile, { encoding: "utf8", flag: "a+" }).trim());
    if (pid > 0 && isAlive(pid)) process.kill(pid, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
