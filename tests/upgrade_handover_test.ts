/**
 * The old supervisor's side of an upgrade (server/process/upgrade_handover.ts) against stand-ins
 * for the new one: a program that exits at once, one that leases and dies before listening, and
 * one that takes over and then leases for the old tree's processes.
 *
 * @module
 */

import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { type LeaseSource, MemoryLeaseSource } from "../server/lease/lease_source.ts";
import { LeaseGuard } from "../server/lease/lease_guard.ts";
import { startHandover, UpgradeFailedError } from "../server/process/upgrade_handover.ts";
import type { Supervisor } from "../server/process/supervisor.ts";

const SUCCESSOR = fileURLToPath(new URL("fixtures/upgrade_successor.ts", import.meta.url));
const IS_BUN = "Bun" in globalThis;

/** The runtime running the tests, running `script`. */
function runScript(script: string, args: string[]): { command: string; args: string[] } {
  return {
    command: process.execPath,
    args: IS_BUN ? [script, ...args] : ["run", "-A", script, ...args],
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
      return Promise.resolve(mark);
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
    reopen: (mark) => {
      reopened.push(mark);
      return Promise.resolve(new MemoryLeaseSource(mark + 1));
    },
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
  const { command, args } = runScript(SUCCESSOR, ["die", "5000"]);
  const handover = startHandover({
    supervisor,
    command,
    args,
    env: process.env,
    adminPort: 9001,
    reopen: (mark) => {
      reopened.push(mark);
      return Promise.resolve(new MemoryLeaseSource(mark + 1));
    },
  });
  await assert.rejects(handover.listening, UpgradeFailedError);
  // The successor leased 1001..6000 above the handed mark and reported it before dying.
  assert.deepEqual(reopened, [6000]);
  assert.deepEqual(calls, ["release", "adopt"]);
  const first = await guard.lease(10);
  assert.ok(first > 6000, `the old tree leases again above 6000: got ${first}`);
});

test("upgrade handover: once the new tree listens, the old tree's processes lease through it, above the new tree's own numbers", async () => {
  const { supervisor, calls, guard } = fakeSupervisor(1000);
  const { command, args } = runScript(SUCCESSOR, ["serve", "5000"]);
  const handover = startHandover({
    supervisor,
    command,
    args,
    env: process.env,
    adminPort: null,
    reopen: () => Promise.reject(new Error("must not reopen: the upgrade worked")),
  });
  const ms = await handover.listening;
  assert.ok(ms >= 0);
  await handover.released();
  assert.deepEqual(calls, ["release", "adopt"]);
  // The new tree leased 1001..6000 for itself; the old tree's lease comes from the same source.
  const first = await guard.lease(10);
  assert.equal(first, 6001);
  assert.equal(guard.mark, 6010);
});
