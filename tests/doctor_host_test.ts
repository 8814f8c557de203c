/**
 * `tallyho doctor` on this machine, through the real command line: it reports what /proc says,
 * the backlog a running tallyho really gets, and exits 1 exactly when SYN cookies are off.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { runTallyho, startTallyho, UNDER_TEST } from "./_server.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";
import type { DoctorItem } from "../server/doctor/mod.ts";

const SYSCTLS = [
  "net.ipv4.tcp_syncookies",
  "net.ipv4.tcp_max_syn_backlog",
  "net.ipv4.tcp_synack_retries",
  "net.core.somaxconn",
  "net.ipv4.tcp_abort_on_overflow",
  "net.ipv4.tcp_migrate_req",
  "net.ipv4.ip_local_port_range",
];

function procValue(name: string): string | null {
  try {
    return readFileSync(`/proc/sys/${name.replaceAll(".", "/")}`, "utf8").trim().replace(
      /\s+/g,
      " ",
    );
  } catch {
    return null;
  }
}

function ownOpenFiles(): string {
  const row = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  assert.ok(row, "this process's limits have a Max open files row");
  return `soft ${row[1]}, hard ${row[2]}`;
}

async function doctorJson(): Promise<{ code: number | string; items: Map<string, DoctorItem> }> {
  const { code, stdout, stderr } = await runTallyho(["doctor", "--json"]);
  assert.equal(stderr, "", "nothing on stderr");
  const report = JSON.parse(stdout) as { items: DoctorItem[] };
  return { code, items: new Map(report.items.map((item) => [item.name, item])) };
}

test(`[${UNDER_TEST}] doctor: reports this host's /proc values and exits 1 only without SYN cookies`, async () => {
  const { code, items } = await doctorJson();
  for (const name of SYSCTLS) {
    const item = items.get(name);
    assert.ok(item, `${name} is reported`);
    assert.equal(item.value, procValue(name), `${name} as /proc/sys has it`);
    assert.ok(["ok", "risky", "bad"].includes(item.verdict), `${name}: ${item.verdict}`);
    if (item.verdict !== "ok" && item.value !== null && name !== "net.ipv4.tcp_syncookies") {
      assert.ok(item.fix?.startsWith(`sysctl -w ${name}=`), `${name} fix: ${item.fix}`);
    }
  }
  // A child inherits the test runner's limits, which the runtime already raised soft to hard.
  assert.equal(items.get("open files")?.value, ownOpenFiles());
  assert.equal(code, procValue("net.ipv4.tcp_syncookies") === "0" ? 1 : 0, "exit code");
});

// `ss` comes with iproute2 (.ci/system_tools.sh); off CI a machine without it skips this.
test(`[${UNDER_TEST}] doctor: its listen backlog is what a running tallyho's threads really get`, {
  skip: skipOffCi(toolMissing("ss", "iproute2")),
}, async () => {
  const { items } = await doctorJson();
  const reported = Number(items.get("listen backlog")?.value);
  const somaxconn = Number(procValue("net.core.somaxconn"));
  assert.ok(reported > 0 && reported <= somaxconn, `backlog ${reported}, somaxconn ${somaxconn}`);
  const server = await startTallyho(["--threads", "2"]);
  try {
    const listing = execFileSync("ss", ["-ltnH", `sport = :${server.port}`], { encoding: "utf8" });
    const sendQs = listing.trim().split("\n").map((line) => Number(line.trim().split(/\s+/)[2]));
    assert.equal(sendQs.length, 2, `one listener per thread:\n${listing}`);
    assert.deepEqual(sendQs, [reported, reported], `ss for the server:\n${listing}`);
  } finally {
    await server.stop();
  }
});

// The listen backlog is read with `ss` (iproute2): off CI a machine without it skips this.
test(`[${UNDER_TEST}] doctor: text output names every item with its verdict and value`, {
  skip: skipOffCi(toolMissing("ss", "iproute2")),
}, async () => {
  const { code, stdout } = await runTallyho(["doctor"]);
  assert.equal(code, procValue("net.ipv4.tcp_syncookies") === "0" ? 1 : 0);
  for (const name of SYSCTLS) {
    const value = procValue(name) ?? "?";
    assert.match(
      stdout,
      new RegExp(`^(ok|risky|bad) +${name.replaceAll(".", "\\.")} = ${value}$`, "m"),
    );
  }
  assert.match(stdout, /^(ok|risky|bad) +listen backlog = \d+$/m);
  assert.match(stdout, /^\d+ ok, \d+ risky, \d+ bad\.$/m);
});

test(`[${UNDER_TEST}] doctor: is listed in --help, and a bad doctor flag is one line and exit 2`, async () => {
  const help = await runTallyho(["--help"]);
  assert.match(help.stdout, /^ {2}tallyho doctor \[--json\] /m);
  const bad = await runTallyho(["doctor", "--jsno"]);
  assert.equal(bad.code, 2);
  assert.equal(
    bad.stderr,
    "tallyho: Unknown option '--jsno'\nRun 'tallyho doctor --help' for usage.\n",
  );
  assert.equal(bad.stdout, "");
});
