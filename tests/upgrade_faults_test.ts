/**
 * Upgrades under faults (issue 23, items 10-13): each test injects a fault during an upgrade,
 * under load from the independent recorder (tests/fixtures/upgrade_recorder.py), removes it, and
 * checks that service comes back by itself, that `/readyz` told the truth throughout (not ready
 * while clients were refused), and that no number was served twice. The faults: the number
 * source unreachable (Redis killed, an etcd cluster without its member) and back; the state
 * file's directory read-only and writable again; the state file's file system full and freed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { UNDER_TEST } from "./_server.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";
import { redisUnavailable, startRedis } from "./_redis.ts";
import { skipEtcd, startEtcd } from "./_etcd.ts";
import {
  assertNoRepeats,
  describeRecording,
  inNamespace,
  privateMount,
  readyzLies,
  readyzNotReady,
  type Recorder,
  type Recording,
  remount,
  repliesFrom,
  startRecorder,
  startTree,
  stopTree,
  type Tree,
  treeArgs,
  upgrade,
} from "./_upgrade.ts";
import { sleep, waitUntil } from "./_wait.ts";

const SKIP = skipOffCi(toolMissing("python3", "python3"));
const AS_ROOT = process.getuid?.() === 0;
const CAN_UNSHARE = AS_ROOT &&
  spawnSync("unshare", ["-m", "--propagation", "private", "true"]).status === 0;
const SKIP_MOUNTS = SKIP ||
  (CAN_UNSHARE ? false : "needs root and unshare -m (a private mount namespace)");

const ADMIN = { admin: "127.0.0.1:0" };

/** Load that uses up a process's numbers within about a second once it cannot lease. */
const DRAINING_LOAD = { perRequest: 2, longLived: 2, batch: 50, paceMs: 5, maxSeconds: 100 };

/** `/readyz`'s status now (the connection refused or failed: 0). */
async function readyz(tree: Tree): Promise<number> {
  try {
    const response = await fetch(`http://127.0.0.1:${tree.adminPort}/readyz`);
    await response.body?.cancel();
    return response.status;
  } catch {
    return 0;
  }
}

/** Polls `/readyz` until it answers `status`. */
async function readyzBecomes(tree: Tree, status: number, timeoutMs: number): Promise<void> {
  await waitUntil(async () => (await readyz(tree)) === status, {
    timeoutMs,
    everyMs: 50,
    what: () => `/readyz answering ${status}; output:\n${tree.output()}`,
  });
}

/**
 * The checks every fault test ends with. `faultS` and `backS` are the recorder's seconds when
 * the fault began and when service was back (`/readyz` 200 again).
 */
function assertRecovered(recording: Recording, faultS: number, backS: number): void {
  assertNoRepeats(recording);
  assert.deepEqual(readyzLies(recording), [], "/readyz said ready while clients were refused");
  // Refused clients are closed cleanly, unanswered: never reset, never refused by the kernel.
  assert.deepEqual(
    recording.errors.filter(([kind]) => kind !== "unanswered"),
    [],
    "no client reset, refused or timed out",
  );
  const outside = recording.errors.filter(([, , , at]) => at < faultS - 0.5 || at > backS + 1);
  assert.deepEqual(outside, [], `errors outside the fault (${faultS} s to ${backS} s)`);
  assert.ok(repliesFrom(recording, backS + 1) > 0, "served again after the fault");
  assert.equal(recording.readyz.at(-1)?.[1], 200, "ready again at the end");
}

/** Runs `fault` under load, then returns what was recorded; stops the recorder either way. */
async function underLoad(
  recorder: Recorder,
  fault: () => Promise<{ faultS: number; backS: number }>,
): Promise<{ recording: Recording; faultS: number; backS: number }> {
  let window: { faultS: number; backS: number };
  try {
    window = await fault();
  } catch (error) {
    await recorder.stop();
    throw error;
  }
  return { recording: await recorder.stop(), ...window };
}

for (const kind of ["Redis", "etcd"] as const) {
  test(
    `[${UNDER_TEST}] upgrade while ${kind} is unreachable fails, the old tree serves on, says not ready once its numbers run out, and leases again by itself once ${kind} is back`,
    {
      skip: SKIP || (kind === "Redis" ? skipOffCi(redisUnavailable) : skipEtcd),
      timeout: 120_000,
    },
    async () => {
      const source = kind === "Redis"
        ? await startRedis({ durable: true }).then((redis) => ({
          url: redis.url("tallyho:faults"),
          down: () => redis.kill(),
          up: () => redis.restart(),
          close: () => redis.close(),
        }))
        : await startEtcd(1).then((etcd) => ({
          url: etcd.url("tallyho-faults"),
          down: () => etcd.stop(0),
          up: () => etcd.start(0),
          close: () => etcd.close(),
        }));
      const tree = await startTree(treeArgs(["--numbers", source.url], ADMIN));
      try {
        const recorder = startRecorder(tree, DRAINING_LOAD);
        const { recording, faultS, backS } = await underLoad(recorder, async () => {
          await sleep(500); // load before the fault
          const faultS = recorder.now();
          await source.down();
          process.kill(tree.pid, "SIGUSR2");
          await tree.waitFor(/upgrade failed: .*this tree serves on/);
          // Its processes run out of the numbers they hold: /readyz says so.
          await readyzBecomes(tree, 503, 20_000);
          await source.up();
          await readyzBecomes(tree, 200, 20_000);
          const backS = recorder.now();
          // Not wedged: the next upgrade works.
          await upgrade(tree);
          // Watched for a while under load after the fault.
          await sleep((backS + 3 - recorder.now()) * 1000);
          return { faultS, backS };
        });
        console.log(
          `[${UNDER_TEST}] ${kind} down during an upgrade: ${describeRecording(recording)}`,
        );
        assertRecovered(recording, faultS, backS);
        // Redis refuses at once, and the old tree says it tries again; opening etcd waits.
        if (kind === "Redis") {
          assert.match(tree.output(), /cannot open the number source again yet/);
        }
      } finally {
        await stopTree(tree);
        await source.close();
      }
    },
  );
}

test(
  `[${UNDER_TEST}] upgrade with the state file's directory read-only fails, the old tree serves on, says not ready once its numbers run out, and leases again by itself once it is writable`,
  { skip: SKIP_MOUNTS, timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "tallyho-upgrade-faults-"));
    const state = join(dir, "numbers.state");
    const tree = await startTree(treeArgs(["--state", state], ADMIN), {
      wrap: privateMount(dir, ["--bind", '"$0"']),
    });
    try {
      const recorder = startRecorder(tree, DRAINING_LOAD);
      const { recording, faultS, backS } = await underLoad(recorder, async () => {
        await sleep(500); // load before the fault
        const faultS = recorder.now();
        await remount(tree.pid, dir, "ro");
        process.kill(tree.pid, "SIGUSR2");
        await tree.waitFor(/upgrade failed: .*this tree serves on/);
        await readyzBecomes(tree, 503, 20_000);
        await remount(tree.pid, dir, "rw");
        await readyzBecomes(tree, 200, 20_000);
        const backS = recorder.now();
        await upgrade(tree);
        await sleep((backS + 3 - recorder.now()) * 1000);
        return { faultS, backS };
      });
      console.log(`[${UNDER_TEST}] read-only state directory: ${describeRecording(recording)}`);
      assertRecovered(recording, faultS, backS);
      // The old tree let its lock go although the lock file could not be removed, and said so.
      assert.match(tree.output(), /did not close cleanly: Could not remove the lock file .*EROFS/);
      assert.doesNotMatch(tree.output(), /internal error|Unhandled|\n {4}at /);
    } finally {
      await stopTree(tree);
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  `[${UNDER_TEST}] upgrade with the state file's file system full: the new tree cannot lease, so it does not take over, and the old tree serves every client from the numbers it holds; once freed, the upgrade works`,
  { skip: SKIP_MOUNTS, timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "tallyho-upgrade-faults-"));
    const state = join(dir, "numbers.state");
    // A small file system of the trees' own: a tmpfs in a private mount namespace.
    const tree = await startTree(treeArgs(["--state", state], ADMIN), {
      wrap: privateMount(dir, ["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"]),
    });
    try {
      // Light load: the old tree's first blocks last the whole test.
      const recorder = startRecorder(tree, {
        perRequest: 1,
        longLived: 1,
        paceMs: 20,
        maxSeconds: 100,
      });
      const { recording } = await underLoad(recorder, async () => {
        await sleep(500); // load before the fault
        const faultS = recorder.now();
        // Fills it: the state file's next write fails with ENOSPC.
        inNamespace(tree.pid, ["sh", "-c", `cat /dev/zero > '${dir}/fill'`]);
        process.kill(tree.pid, "SIGUSR2");
        await tree.waitFor(/upgrade failed: .*ENOSPC.*this tree serves on/);
        assert.equal(await readyz(tree), 200, "the old tree still has numbers");
        assert.equal(inNamespace(tree.pid, ["rm", `${dir}/fill`]).status, 0);
        const backS = recorder.now();
        await upgrade(tree);
        await sleep((backS + 1 - recorder.now()) * 1000);
        return { faultS, backS };
      });
      console.log(`[${UNDER_TEST}] full state file system: ${describeRecording(recording)}`);
      assertNoRepeats(recording);
      assert.deepEqual(recording.errors, [], "no client refused: the old tree served throughout");
      assert.deepEqual(readyzNotReady(recording), [], "/readyz 200 (or the port passing)");
    } finally {
      await stopTree(tree);
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
