/**
 * The old supervisor's side of an upgrade (server/process/upgrade_handover.ts) against stand-ins
 * for the new one: a program that cannot be started, one that exits at once, one that is silent,
 * one that leases and dies before listening, one that grants the old tree a lease and dies, and
 * one that takes over and then leases for the old tree's processes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { RUNNER, scriptCommand } from "./_target.ts";
import { waitUntil } from "./_wait.ts";
import { type LeaseSource, MemoryLeaseSource } from "../server/lease/lease_source.ts";
import { LeaseGuard } from "../server/lease/lease_guard.ts";
import {
  type Handover,
  type HandoverOptions,
  startHandover,
  UpgradeFailedError,
} from "../server/process/upgrade_handover.ts";
import type { Supervisor } from "../server/process/supervisor.ts";

const SUCCESSOR = fileURLToPath(new URL("fixtures/upgrade_successor.ts", import.meta.url));

/**
 * Starts a handover from `supervisor` to the stand-in successor in `mode`, leasing `count`.
 * `reopen` opens the old tree's source again; by default it must not be called.
 */
function handTo(
  supervisor: Supervisor,
  mode: string,
  count: number,
  options: Partial<HandoverOptions> = {},
): Handover {
  const { cmd, argv } = scriptCommand(SUCCESSOR, [mode, String(count)], RUNNER);
  return startHandover({
    supervisor,
    command: cmd,
    args: argv,
    env: process.env,
    adminPort: null,
    reopen: () => Promise.reject(new Error("must not reopen")),
    ...options,
  });
}

/** A `reopen` that opens memory above the mark and notes each mark it was given. */
function reopenInto(reopened: number[]): (mark: number) => Promise<LeaseSource> {
  return (mark) => {
    reopened.push(mark);
    return Promise.resolve(new MemoryLeaseSource(mark + 1));
  };
}

/** The slice of a supervisor the handover uses, with a mark and what it was given. */
function fakeSupervisor(mark: number) {
  const calls: string[] = [];
  const guard = new LeaseGuard(new MemoryLeaseSource(1), mark);
  const fake = {
    port: 4321,
    releaseSource: () => {
      calls.push("release");
      return Promise.resolve(guard.mark);
    },
    adoptSource: (source: LeaseSource) => {
      calls.push("adopt");
      guard.replace(source);
    },
  };
  return { supervisor: fake as unknown as Supervisor, calls, guard };
}

test("upgrade handover: a new program that exits at once leaves the old tree leasing from its own source, never released", async () => {
  const { supervisor, calls } = fakeSupervisor(1000);
  const reopened: number[] = [];
  const handover = startHandover({
    supervisor,
    command: "/bin/sh",
    args: ["-c", "exit 3"],
    env: process.env,
    adminPort: null,
    reopen: reopenInto(reopened),
  });
  await assert.rejects(handover.listening, (error: Error) => {
    assert.ok(error instanceof UpgradeFailedError);
    assert.match(error.message, /exited \(code 3\)|closed the handover channel/);
    assert.match(error.message, /this tree serves on/);
    return true;
  });
  assert.deepEqual(calls, [], "the source was never released, so nothing is reopened");
  assert.deepEqual(reopened, []);
});

test("upgrade handover: a new tree that leases and dies before listening makes the old one lease again above everything it could have served", async () => {
  const { supervisor, calls, guard } = fakeSupervisor(1000);
  const reopened: number[] = [];
  const handover = handTo(supervisor, "die", 5000, {
    adminPort: 9001,
    reopen: reopenInto(reopened),
  });
  await assert.rejects(handover.listening, UpgradeFailedError);
  await handover.recovered;
  // The successor leased 1001..6000 above the handed mark and reported it before dying.
  assert.deepEqual(reopened, [6000]);
  assert.deepEqual(calls, ["release", "adopt"]);
  const first = await guard.lease(10);
  assert.ok(first > 6000, `the old tree leases again above 6000: got ${first}`);
});

test("upgrade handover: once the new tree listens, the old tree's processes lease through it, above the new tree's own numbers", async () => {
  const { supervisor, calls, guard } = fakeSupervisor(1000);
  const handover = handTo(supervisor, "serve", 5000);
  const ms = await handover.listening;
  assert.ok(ms >= 0);
  await handover.released();
  assert.deepEqual(calls, ["release", "adopt"]);
  // The new tree leased 1001..6000 for itself; the old tree's lease comes from the same source.
  const first = await guard.lease(10);
  assert.equal(first, 6001);
  assert.equal(guard.mark, 6010);
});

test("upgrade handover: a program that cannot be run is refused at once, before anything is given up", () => {
  const { supervisor, calls } = fakeSupervisor(1000);
  const directory = mkdtempSync(join(tmpdir(), "tallyho-handover-"));
  const notExecutable = join(directory, "tallyho");
  writeFileSync(notExecutable, "#!/bin/sh\n", { mode: 0o644 });
  // (A file that is no program is refused at once on Bun (ENOEXEC); Deno's spawn runs it with
  // /bin/sh, as execvp does, and it exits at once: the failure a test above covers.)
  for (const command of [join(directory, "missing"), notExecutable]) {
    assert.throws(
      () =>
        startHandover({
          supervisor,
          command,
          args: [],
          env: process.env,
          adminPort: null,
          reopen: () => Promise.reject(new Error("nothing to reopen")),
        }),
      (error: Error) => {
        assert.ok(error instanceof UpgradeFailedError);
        assert.match(error.message, /cannot be run \((ENOENT|EACCES)\).*this tree serves on/);
        return true;
      },
    );
  }
  rmSync(directory, { recursive: true, force: true });
  assert.deepEqual(calls, []);
});

test("upgrade handover: a new program that never joins is ended after the timeout, and the old tree gave nothing up", async () => {
  const { supervisor, calls } = fakeSupervisor(1000);
  const handover = handTo(supervisor, "silent", 0, { timeoutMs: 300 });
  await assert.rejects(handover.listening, /did not take over within 300 ms/);
  await handover.recovered;
  assert.deepEqual(calls, []);
});

test("upgrade handover: a source that cannot be opened again is tried again until it can; meanwhile another upgrade is told why", async () => {
  const { supervisor, calls, guard } = fakeSupervisor(1000);
  const lines: string[] = [];
  let tries = 0;
  const handover = handTo(supervisor, "die", 5000, {
    log: (line) => lines.push(line),
    reopenRetryMaxMs: 50,
    reopen: (mark) => {
      if (++tries <= 3) return Promise.reject(new Error("Cannot reach Redis at 127.0.0.1:1"));
      return Promise.resolve(new MemoryLeaseSource(mark + 1));
    },
  });
  await assert.rejects(handover.listening, UpgradeFailedError);
  assert.match(handover.recovering ?? "", /opening it again|Cannot reach Redis/);
  await handover.recovered;
  assert.equal(handover.recovering, null);
  assert.equal(tries, 4);
  assert.deepEqual(calls, ["release", "adopt"]);
  assert.ok((await guard.lease(10)) > 6000);
  assert.equal(
    lines.filter((line) => /cannot open the number source again yet/.test(line)).length,
    1,
  );
  assert.match(lines.at(-1)!, /open again after 3 failed tries; leasing above 6000/);
});

test("upgrade handover: the old tree's processes lease through the new tree once its source is open, and after it dies the old tree leases above that grant", async () => {
  const { supervisor, calls, guard } = fakeSupervisor(1000);
  const handover = handTo(supervisor, "open-die", 0, { reopen: reopenInto([]) });
  const failed = assert.rejects(handover.listening, UpgradeFailedError);
  // Before it listens, the old tree leases through it: no wait while it starts.
  await waitUntil(() => calls.includes("adopt"), { what: "the old tree leasing through it" });
  const through = await guard.lease(100);
  assert.equal(through, 1001, "granted by the new tree, above the mark");
  await failed;
  await handover.recovered;
  assert.deepEqual(calls, ["release", "adopt", "release", "adopt"]);
  assert.ok((await guard.lease(10)) > 1100, "leases again above the new tree's grant");
});
