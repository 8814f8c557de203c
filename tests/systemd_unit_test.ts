/**
 * The systemd unit in docs/ (issue 13): `systemd-analyze verify` (Debian package `systemd`)
 * accepts it without a warning, it carries the limits and hardening operators expect, and the
 * command lines it runs are ones tallyho accepts. Off CI a missing systemd-analyze skips.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseServeArgs } from "../cli/serve.ts";
import { ROOT } from "./_server.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";

const UNIT = readFileSync(join(ROOT, "docs/tallyho.service"), "utf8");
const BINARY = "/usr/local/bin/tallyho";
const skip = skipOffCi(toolMissing("systemd-analyze", "systemd"));

/**
 * Runs `systemd-analyze verify` on `text`, with the binary's path pointed at a stand-in that
 * exists (verify refuses a unit whose ExecStart is missing).
 */
function verify(text: string): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-unit-"));
  try {
    const stub = join(dir, "tallyho");
    writeFileSync(stub, "#!/bin/sh\nexit 0\n");
    chmodSync(stub, 0o755);
    const unit = join(dir, "tallyho.service");
    writeFileSync(unit, text.replaceAll(BINARY, stub));
    const run = spawnSync("systemd-analyze", ["verify", "--man=no", unit], { encoding: "utf8" });
    if (run.error) throw new Error(`systemd-analyze is needed in CI: ${run.error.message}`);
    return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The unit's settings, key to values, in order. */
function settings(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match) map.set(match[1]!, [...(map.get(match[1]!) ?? []), match[2]!]);
  }
  return map;
}

test("systemd unit: systemd-analyze verify accepts it without a warning", { skip }, () => {
  const { status, output } = verify(UNIT);
  assert.equal(status, 0, output);
  assert.equal(output, "", "no warning either");
});

test("systemd unit: verify would catch a mistake (the check can fail)", { skip }, () => {
  const { output } = verify(UNIT.replace("ProtectSystem=strict", "ProtectSystem=sometimes"));
  assert.match(output, /protect system value.*sometimes/);
  const unknown = verify(UNIT.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"));
  assert.match(unknown.output, /Unknown key 'NoNewPrivilege'/);
});

test("systemd unit: limits, restart policy and hardening are set", () => {
  const s = settings(UNIT);
  const one = (key: string) => {
    const values = s.get(key);
    assert.ok(values && values.length === 1, `${key} set once`);
    return values[0]!;
  };
  assert.equal(one("LimitNOFILE"), "1048576");
  assert.equal(one("Restart"), "on-failure");
  assert.equal(one("RestartPreventExitStatus"), "2", "a bad configuration is not retried");
  assert.equal(one("NoNewPrivileges"), "yes");
  assert.equal(one("ProtectSystem"), "strict");
  assert.equal(one("ProtectHome"), "yes");
  assert.equal(one("PrivateTmp"), "yes");
  assert.equal(one("RuntimeDirectory"), "tallyho", "the admin token's directory");
  assert.equal(one("StateDirectory"), "tallyho", "the numbers' state file survives restarts");
  assert.equal(one("ExecReload"), "/bin/kill -HUP $MAINPID");
  assert.equal(one("Type"), "notify", "systemd hears READY=1 once every process listens");
  assert.equal(
    one("NotifyAccess"),
    "all",
    "an upgrade's new supervisor, not yet the main PID, sends MAINPID=",
  );
  assert.ok(!s.has("MemoryDenyWriteExecute"), "the JavaScript JITs need W+X memory");
});

test("systemd unit: the command lines it runs are ones tallyho accepts", () => {
  const s = settings(UNIT);
  for (const [key, command] of [["ExecStart", "serve"], ["ExecStartPre", "check"]] as const) {
    const words = s.get(key)![0]!.split(/\s+/);
    assert.equal(words[0], BINARY);
    assert.equal(words[1], command);
    // check's own switch: one line in the journal per start, not the whole configuration.
    if (command === "check") assert.equal(words[2], "--quiet");
    const parsed = parseServeArgs(words.slice(2).filter((word) => word !== "--quiet"));
    assert.ok(typeof parsed === "object", key);
    assert.equal(parsed.configFile, "/etc/tallyho/tallyho.json");
    assert.equal(parsed.options.state, "/var/lib/tallyho/numbers.state", "in StateDirectory");
  }
});
