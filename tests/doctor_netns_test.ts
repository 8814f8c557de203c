/**
 * `tallyho doctor` inside a network namespace whose TCP settings the test changed: it reports
 * the namespace's values (not the host's), the backlog cut down by the namespace's somaxconn,
 * and exits 1 while SYN cookies are off there.
 */
import assert from "node:assert/strict";
import { release } from "node:os";
import { test } from "node:test";
import {
  createNetns,
  deleteNetns,
  finished,
  mustRun,
  netnsUnavailable,
  requireNetns,
  run,
  skipUnlessCi,
  spawnIn,
} from "./_netns.ts";
import { tallyhoCommand, UNDER_TEST } from "./_server.ts";
import type { DoctorItem } from "../server/doctor/mod.ts";

const unavailable = netnsUnavailable(["sysctl"]);

// Settings the kernel keeps per network namespace, changed to values a host would not have.
const CHANGED: Record<string, string> = {
  "net.ipv4.tcp_syncookies": "0",
  "net.core.somaxconn": "64",
  "net.ipv4.tcp_max_syn_backlog": "256",
  "net.ipv4.ip_local_port_range": "40000 40999",
};
// Per namespace too by Linux 5.14 (when tcp_migrate_req came); on older kernels writing them
// inside a namespace could change the host's, so there they are only read back.
const CHANGED_ON_5_14: Record<string, string> = {
  "net.ipv4.tcp_synack_retries": "4",
  "net.ipv4.tcp_abort_on_overflow": "1",
  "net.ipv4.tcp_migrate_req": "1",
};

async function doctorIn(
  ns: string,
): Promise<{ code: number | string; items: Map<string, DoctorItem>; stderr: string }> {
  const { cmd, argv, cwd } = tallyhoCommand(["doctor", "--json"]);
  const { code, stdout, stderr } = await finished(spawnIn(ns, cmd, argv, cwd));
  let items: DoctorItem[];
  try {
    items = (JSON.parse(stdout) as { items: DoctorItem[] }).items;
  } catch {
    throw new Error(`doctor printed no JSON (exit ${code}):\n${stdout}\n${stderr}`);
  }
  return { code, items: new Map(items.map((item) => [item.name, item])), stderr };
}

function nsValue(ns: string, name: string): string | null {
  const read = run(ns, "cat", [`/proc/sys/${name.replaceAll(".", "/")}`]);
  return read.code === 0 ? read.stdout.trim().replace(/\s+/g, " ") : null;
}

test(
  `[${UNDER_TEST}] doctor netns: reports a namespace's own changed settings and exits 1 there without SYN cookies`,
  { skip: skipUnlessCi(unavailable) },
  async () => {
    requireNetns(unavailable);
    const ns = createNetns("tallyho-doc");
    try {
      for (const [name, value] of Object.entries(CHANGED)) {
        mustRun(ns, "sysctl", ["-q", "-w", `${name}=${value}`]);
      }
      const [major = 0, minor = 0] = release().split(".").map(Number);
      const extra = major > 5 || (major === 5 && minor >= 14) ? Object.keys(CHANGED_ON_5_14) : [];
      for (const name of extra) {
        mustRun(ns, "sysctl", ["-q", "-w", `${name}=${CHANGED_ON_5_14[name]}`]);
      }

      const off = await doctorIn(ns);
      assert.equal(off.code, 1, `exit code with SYN cookies off; stderr: ${off.stderr}`);
      for (const [name, value] of Object.entries({ ...CHANGED, ...CHANGED_ON_5_14 })) {
        const expected = name in CHANGED || extra.includes(name) ? value : nsValue(ns, name);
        assert.equal(off.items.get(name)?.value, expected, name);
        assert.equal(nsValue(ns, name), expected, `${name} as the namespace's /proc has it`);
      }
      assert.equal(off.items.get("net.ipv4.tcp_syncookies")?.verdict, "bad");
      assert.equal(
        off.items.get("net.ipv4.tcp_syncookies")?.fix,
        "sysctl -w net.ipv4.tcp_syncookies=1",
      );
      assert.equal(off.items.get("net.core.somaxconn")?.verdict, "bad");
      assert.equal(off.items.get("net.ipv4.tcp_max_syn_backlog")?.verdict, "risky");
      assert.equal(off.items.get("net.ipv4.ip_local_port_range")?.verdict, "risky");
      // The runtime asks for 511 or 512; the namespace's somaxconn cuts what it gets to 64.
      const backlog = off.items.get("listen backlog");
      assert.equal(backlog?.value, "64");
      assert.equal(backlog?.fix, "sysctl -w net.core.somaxconn=4096");

      mustRun(ns, "sysctl", ["-q", "-w", "net.ipv4.tcp_syncookies=1"]);
      const on = await doctorIn(ns);
      assert.equal(on.code, 0, `exit code with SYN cookies back on; stderr: ${on.stderr}`);
      assert.equal(on.items.get("net.ipv4.tcp_syncookies")?.value, "1");
      assert.equal(on.items.get("net.ipv4.tcp_syncookies")?.verdict, "ok");
      assert.equal(on.items.get("net.core.somaxconn")?.value, "64", "still the namespace's");
    } finally {
      await deleteNetns(ns);
    }
  },
);
