/**
 * Attacks on an upgrade's number handover (issue 17): each test drives the handover into a corner
 * where a number could be served twice and checks that it is not. The test process stands in for
 * the oldest tree (`startHandover` with a fake supervisor), so it can lease exactly when it wants,
 * as an old tree's process that still serves a long-lived connection would.
 *
 * @module
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { type LeaseSource, MemoryLeaseSource } from "../server/lease/lease_source.ts";
import { LeaseGuard } from "../server/lease/lease_guard.ts";
import { readStateFile, StateFileLeaseSource } from "../server/lease/state_file.ts";
import { startHandover, UpgradeFailedError } from "../server/process/upgrade_handover.ts";
import type { Supervisor } from "../server/process/supervisor.ts";
import { LineClient, replyNumber } from "./_client.ts";
import { ADMIN_TOKEN, isAlive, tallyhoCommand, UNDER_TEST } from "./_server.ts";

test("state file: a source closed for an upgrade grants nothing and never writes the file its new holder leases from", async () => {
  const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-attack-"));
  try {
    const path = join(directory, "numbers.state");
    const old = StateFileLeaseSource.open(path, 1);
    assert.equal(await old.lease(10), 1);
    // The old tree lets go (releaseSource), the new one takes the lock and leases on.
    await old.close();
    const taker = StateFileLeaseSource.open(path, 1);
    assert.equal(await taker.lease(1000), 11);
    assert.equal(readStateFile(path), 1011);
    // A lease that reaches the closed source (a process of the old tree asking late) must fail
    // without touching the file: written back, it would set the mark below 1011, and the next
    // start after a crash would serve 16..1010 again.
    await assert.rejects(old.lease(5));
    assert.equal(readStateFile(path), 1011, "the closed source rewrote the state file");
    await taker.close();
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("state file: a source closed twice (an upgrade's release, then the old tree's stop) leaves the lock of the tree that took over alone", async () => {
  const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-attack-"));
  try {
    const path = join(directory, "numbers.state");
    const old = StateFileLeaseSource.open(path, 1);
    assert.equal(await old.lease(10), 1);
    await old.close(); // released for the new tree
    const taker = StateFileLeaseSource.open(path, 1);
    // SIGTERM while the handover is under way: the old tree's stop closes its source again. Its
    // lock file is gone; the taker's may have the same inode number, and must not be removed.
    await old.close();
    assert.ok(existsSync(`${path}.lock`), "the taker's lock file was removed");
    assert.equal(await taker.lease(10), 11);
    await taker.close();
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

/** The slice of a supervisor the handover uses: its leases pass `guard`, as a real one's do. */
function fakeOldTree(port: number) {
  const guard = new LeaseGuard(new MemoryLeaseSource(1));
  const fake = {
    port,
    releaseSource: async () => {
      await guard.close();
      return guard.mark;
    },
    adoptSource: (source: LeaseSource) => guard.replace(source),
  };
  return { supervisor: fake as unknown as Supervisor, guard };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(read: () => string, pattern: RegExp, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(read());
    if (match !== null) return match;
    if (Date.now() > deadline) throw new Error(`${pattern} did not appear; output:\n${read()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Tree 2: the real server, started by this test as tree 1 (a fake supervisor whose leases pass
 * `guard`) through the handover, on a free port. Tree 2, and tree 3 if it starts one, write into
 * one log.
 */
async function secondTree(directory: string, reopen: (mark: number) => Promise<LeaseSource>) {
  const log = join(directory, "trees.log");
  const output = () => {
    try {
      return readFileSync(log, "utf8");
    } catch {
      return "";
    }
  };
  const port = await freePort();
  const { supervisor, guard } = fakeOldTree(port);
  const { cmd, argv } = tallyhoCommand([
    "serve",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--admin",
    "off",
    "--processes",
    "1",
    "--threads",
    "1",
    "--framing",
    "line",
    "--number-by",
    "message",
    "--drain-timeout",
    "1s",
  ]);
  const handover = startHandover({
    supervisor,
    command: "/bin/sh",
    args: ["-c", `exec "$0" "$@" >>'${log}' 2>&1`, cmd, ...argv],
    env: { ...process.env },
    adminPort: null,
    reopen,
  });
  return { port, guard, handover, output, pids: [handover.pid] };
}

/** Stops every tree in `pids` and removes `directory`. */
async function stopTrees(pids: number[], directory: string): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // Gone already.
    }
  }
  const deadline = Date.now() + 15_000;
  while (pids.some(isAlive) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  for (const pid of pids.filter(isAlive)) process.kill(pid, "SIGKILL");
  rmSync(directory, { recursive: true, force: true });
}

test(
  `[${UNDER_TEST}] upgrade chain: a tree upgraded again while its predecessor still drains never grants that predecessor a number the third tree serves`,
  {
    timeout: 120_000,
  },
  async () => {
    const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-attack-"));
    const { port, guard, handover, output, pids } = await secondTree(
      directory,
      () => Promise.reject(new Error("tree 2 must take over")),
    );
    try {
      await handover.listening;
      await handover.released();
      // Tree 1 (this test) still serves a connection: its process leases through tree 2.
      const granted: [number, number][] = [];
      const lease = async () => {
        try {
          const first = await guard.lease(4096);
          granted.push([first, first + 4095]);
        } catch {
          // Tree 2 gone or refusing: nothing granted, nothing to check.
        }
      };
      await lease();
      process.kill(handover.pid, "SIGUSR2");
      const started = await waitFor(output, /started a new supervisor \(pid (\d+)\)/);
      pids.push(Number(started[1]));
      // Tree 1's process keeps leasing while tree 3 starts and takes over from tree 2.
      const tookOver = new RegExp(
        `took over from pid ${handover.pid} on port \\d+, numbering above (\\d+)`,
      );
      while (tookOver.exec(output()) === null) {
        await lease();
        await new Promise((resolve) => setTimeout(resolve, 20));
        if (!isAlive(pids[1]!)) throw new Error(`tree 3 died:\n${output()}`);
      }
      const mark = Number(tookOver.exec(output())![1]);
      // What tree 3 serves now comes from its own blocks, the first of which starts above `mark`.
      const client = await LineClient.connect(port);
      const served: number[] = [];
      for (let i = 0; i < 5; i++) served.push(replyNumber(await client.request("x\n")));
      client.close();
      const clash = granted.filter(([first, last]) => served.some((n) => n >= first && n <= last));
      assert.deepEqual(
        clash,
        [],
        `tree 3 (numbering above ${mark}) served ${served.join(", ")}, inside blocks tree 2 ` +
          `granted to tree 1's process: ${JSON.stringify(granted)}`,
      );
    } finally {
      await stopTrees(pids, directory);
    }
  },
);

test(
  `[${UNDER_TEST}] upgrade chain: a tree still taking over (the tree before has not let go) refuses to be upgraded, so a tree it started could never number where the tree before takes its numbers back`,
  {
    timeout: 120_000,
  },
  async () => {
    const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-attack-"));
    const { port, guard, handover, output, pids } = await secondTree(
      directory,
      (mark) => Promise.resolve(new MemoryLeaseSource(mark + 1)),
    );
    try {
      await handover.listening;
      // Tree 2 listens; tree 1 (this test) has not let go yet, and tree 2 is asked to upgrade.
      process.kill(handover.pid, "SIGUSR2");
      const answer = await waitFor(
        output,
        /started a new supervisor \(pid (\d+)\)|SIGUSR2: Cannot upgrade: this server is still taking over from pid \d+/,
      );
      if (answer[1] !== undefined) {
        // It did: tree 3 takes over from tree 2, which then dies before tree 1 let go.
        pids.push(Number(answer[1]));
        const tookOver = new RegExp(
          `took over from pid ${handover.pid} on port \\d+, numbering above (\\d+)`,
        );
        const mark = Number((await waitFor(output, tookOver))[1]);
        process.kill(handover.pid, "SIGKILL");
        assert.equal(await handover.released(), false, "tree 1 takes its numbers back");
        const first = await guard.lease(4096);
        const client = await LineClient.connect(port);
        const served = replyNumber(await client.request("x\n"));
        client.close();
        assert.ok(
          served < first || served > first + 4095,
          `tree 3 (numbering above ${mark}) served ${served}, and tree 1, taking its numbers ` +
            `back, leased ${first} to ${first + 4095}`,
        );
      }
      assert.equal(await handover.released(), true);
    } finally {
      await stopTrees(pids, directory);
    }
  },
);

const SUCCESSOR = fileURLToPath(new URL("fixtures/upgrade_successor.ts", import.meta.url));

test(
  "upgrade handover: a new tree killed the moment it reported a lease makes the old one lease again above that lease, every time",
  {
    timeout: 120_000,
  },
  async () => {
    const rounds = 12;
    const below: string[] = [];
    for (let round = 0; round < rounds; round++) {
      const mark = 1000 * (round + 1);
      const { supervisor, guard } = fakeOldTree(0);
      await guard.lease(mark); // this tree's own numbers: 1..mark
      const reopened: number[] = [];
      const handover = startHandover({
        supervisor,
        command: process.execPath,
        args: "Bun" in globalThis ? [SUCCESSOR, "crash", "5000"] : [
          "run",
          "-A",
          SUCCESSOR,
          "crash",
          "5000",
        ],
        env: process.env,
        adminPort: null,
        reopen: (above) => {
          reopened.push(above);
          return Promise.resolve(new MemoryLeaseSource(above + 1));
        },
      });
      await assert.rejects(handover.listening, UpgradeFailedError);
      // The successor leased mark+1 .. mark+5000 and reported it before it was killed.
      const first = await guard.lease(10);
      if (first <= mark + 5000) {
        below.push(
          `round ${round}: reopened above ${reopened}, leased ${first}`,
        );
      }
    }
    assert.deepEqual(below, [], "the old tree leased again inside the dead successor's block");
  },
);

/** A real server started by the test, with every tree's output (they share its stdout). */
async function startTree(args: string[], directory: string) {
  const { cmd, argv, cwd } = tallyhoCommand(["serve", ...args]);
  const child = spawn(cmd, argv, {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, TMPDIR: directory },
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const read = () => output;
  const port = Number((await waitFor(read, /listening on \S+:(\d+)/, 30_000))[1]);
  return { child, port, output: read };
}

test(
  `[${UNDER_TEST}] upgrade: a new tree whose state file is new (numbers were in memory) numbers above the old tree at once, rather than refusing every client`,
  {
    timeout: 120_000,
  },
  async () => {
    const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-attack-"));
    const config = join(directory, "tallyho.json");
    // Numbers in memory from far up (a server that has numbered for months, or started high).
    writeFileSync(config, JSON.stringify({ "first-number": 1_000_000_000_000 }) + "\n");
    const tree = await startTree([
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--admin",
      "off",
      "--processes",
      "1",
      "--threads",
      "1",
      "--framing",
      "line",
      "--number-by",
      "message",
      "--drain-timeout",
      "1s",
      "--config",
      config,
    ], directory);
    const pids = [tree.child.pid!];
    try {
      const before = await LineClient.connect(tree.port);
      const served: number[] = [];
      for (let i = 0; i < 5; i++) served.push(replyNumber(await before.request("x\n")));
      before.close();
      // The operator makes the numbers durable (a restart-only key) and upgrades to apply it.
      writeFileSync(config, JSON.stringify({ state: join(directory, "numbers.state") }) + "\n");
      process.kill(pids[0]!, "SIGUSR2");
      const handed = await waitFor(tree.output, /handed over to pid (\d+)|upgrade failed.*/);
      assert.ok(handed[1] !== undefined, handed[0]);
      pids.push(Number(handed[1]));
      const after = await LineClient.connect(tree.port);
      for (let i = 0; i < 5; i++) {
        served.push(
          replyNumber(
            await after.request("x\n").catch((e: Error) => {
              throw new Error(`${e.message}; output:\n${tree.output()}`);
            }),
          ),
        );
      }
      after.close();
      assert.equal(new Set(served).size, served.length, "no number served twice");
      assert.ok(served.slice(5).every((n) => n > served[4]!), `above the old tree: ${served}`);
    } finally {
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          // Gone already.
        }
      }
      const deadline = Date.now() + 15_000;
      while (pids.some(isAlive) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      for (const pid of pids.filter(isAlive)) process.kill(pid, "SIGKILL");
      rmSync(directory, { recursive: true, force: true });
    }
  },
);

const ENTRY = fileURLToPath(new URL("fixtures/upgrade_entry.ts", import.meta.url));

test(
  // From source whatever the suite drives: the stand-in is this file run by the test's runtime.
  `upgrade (from source): a new tree that dies after saying it listens, before the old one let go, leaves the old tree serving above the new tree's numbers`,
  {
    timeout: 120_000,
  },
  async () => {
    const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-attack-"));
    const modeFile = join(directory, "mode");
    const runtimeArgs = "Bun" in globalThis ? [] : ["run", "-A", "--unstable-net"];
    const child = spawn(process.execPath, [
      ...runtimeArgs,
      ENTRY,
      "serve",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--admin",
      "127.0.0.1:0",
      "--processes",
      "1",
      "--threads",
      "1",
      "--framing",
      "line",
      "--number-by",
      "message",
      "--drain-timeout",
      "1s",
    ], {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        TMPDIR: directory,
        TALLYHO_ADMIN_TOKEN: ADMIN_TOKEN,
        TALLYHO_TEST_SUCCESSOR_MODE: modeFile,
      },
    });
    let output = "";
    child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const read = () => output;
    try {
      const port = Number((await waitFor(read, /listening on \S+:(\d+)/, 30_000))[1]);
      const admin = `http://127.0.0.1:${
        (await waitFor(read, /admin API on http:\/\/127\.0\.0\.1:(\d+)\//))[1]
      }`;
      const before = await LineClient.connect(port);
      const served = [replyNumber(await before.request("x\n"))];
      writeFileSync(modeFile, "listen-die\n");
      process.kill(child.pid!, "SIGUSR2");
      const standIn = await waitFor(read, /stand-in successor \(pid \d+\) leased (\d+) to (\d+)/);
      const [low, high] = [Number(standIn[1]), Number(standIn[2])];
      // The old tree's open connection is served on, and new clients are answered: by the old tree,
      // since the new one is gone.
      served.push(
        replyNumber(
          await before.request("x\n").catch((e: Error) => {
            throw new Error(`${e.message}; output:\n${output}`);
          }),
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, 3000)); // past the old tree's drain timeout
      const after = await LineClient.connect(port).catch((e: Error) => {
        throw new Error(`${e.message}; output:\n${output}`);
      });
      for (let i = 0; i < 3; i++) {
        served.push(replyNumber(await after.request("x\n")));
      }
      after.close();
      before.close();
      assert.equal(new Set(served).size, served.length, "no number served twice");
      assert.deepEqual(served.filter((n) => n >= low && n <= high), [], "none of the new tree's");
      assert.ok(isAlive(child.pid!), `the old tree serves on; output:\n${output}`);
      assert.match(
        output,
        /exited after it listened, before this tree let go; this tree serves on/,
      );
      // Its admin API is back on the same port, and tells what happened.
      const ready = await fetch(`${admin}/readyz`);
      await ready.body?.cancel();
      assert.equal(ready.status, 200);
      const info = await fetch(`${admin}/v1/info`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      }).then((r) => r.json()) as { pid: number; upgrade?: { state: string } };
      assert.equal(info.pid, child.pid);
      assert.equal(info.upgrade?.state, "failed");
    } finally {
      child.kill("SIGTERM");
      const deadline = Date.now() + 15_000;
      while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      rmSync(directory, { recursive: true, force: true });
    }
  },
);

test(
  `[${UNDER_TEST}] upgrade: SIGTERM to the old tree once the new one holds the state file leaves the new tree serving, leasing on from the file, above every number served`,
  {
    timeout: 120_000,
  },
  async () => {
    const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-attack-"));
    const state = join(directory, "numbers.state");
    const tree = await startTree([
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--admin",
      "off",
      "--processes",
      "1",
      "--threads",
      "1",
      "--framing",
      "line",
      "--number-by",
      "message",
      "--drain-timeout",
      "1s",
      "--state",
      state,
    ], directory);
    const pids = [tree.child.pid!];
    try {
      const served: number[] = [];
      const before = await LineClient.connect(tree.port);
      for (let i = 0; i < 5; i++) served.push(replyNumber(await before.request("x\n")));
      before.close();
      process.kill(pids[0]!, "SIGUSR2");
      pids.push(Number((await waitFor(tree.output, /started a new supervisor \(pid (\d+)\)/))[1]));
      // The new tree has the lock (it reads the file only once it holds it); the old one is told
      // to stop before it has let go: its stop closes its source a second time.
      await waitFor(tree.output, /numbers continue from \d+[^]*numbers continue from (\d+)/);
      process.kill(pids[0]!, "SIGTERM");
      await waitFor(tree.output, /stopped; last number handed out/);
      // The new tree finishes its start alone (the channel ended before it listened).
      await waitFor(
        tree.output,
        new RegExp(`took over from pid ${pids[0]} on port \\d+`),
        20_000,
      );
      // It serves, and past its first block: it leases from the file again.
      const after = await LineClient.connect(tree.port).catch((e: Error) => {
        throw new Error(`${e.message}; output:\n${tree.output()}`);
      });
      for (let i = 0; i < 5000; i++) {
        served.push(
          replyNumber(
            await after.request("x\n").catch((e: Error) => {
              throw new Error(`${e.message} after ${i} replies; output:\n${tree.output()}`);
            }),
          ),
        );
      }
      after.close();
      assert.equal(new Set(served).size, served.length, "no number served twice");
      assert.ok(served.slice(5).every((n) => n > served[4]!), "the new tree numbers above");
      assert.ok(existsSync(`${state}.lock`), "the new tree's lock file is still there");
      assert.ok(readStateFile(state)! > Math.max(...served), "the file is above every number");
    } finally {
      await stopTrees(pids, directory);
    }
  },
);

test(
  "upgrade handover: a new tree killed right after its hello leaves the old tree leasing, its source never let go for good",
  {
    timeout: 120_000,
  },
  async () => {
    const stuck: string[] = [];
    for (let round = 0; round < 12; round++) {
      const calls: string[] = [];
      const { supervisor, guard } = fakeOldTree(0);
      await guard.lease(1000);
      const fake = supervisor as unknown as {
        releaseSource(): Promise<number>;
        adoptSource(source: LeaseSource): void;
      };
      const release = fake.releaseSource;
      const adopt = fake.adoptSource;
      fake.releaseSource = () => (calls.push("release"), release());
      fake.adoptSource = (source) => (calls.push("adopt"), adopt(source));
      const handover = startHandover({
        supervisor,
        command: process.execPath,
        args: "Bun" in globalThis
          ? [SUCCESSOR, "hello-crash", "0"]
          : ["run", "-A", SUCCESSOR, "hello-crash", "0"],
        env: process.env,
        adminPort: null,
        reopen: (above) => Promise.resolve(new MemoryLeaseSource(above + 1)),
      });
      await assert.rejects(handover.listening, UpgradeFailedError);
      // A hello read after the failure must not take the source away for good.
      await new Promise((resolve) => setTimeout(resolve, 100));
      if (calls.length === 1) stuck.push(`round ${round}: ${calls.join(", ")}`);
    }
    assert.deepEqual(stuck, [], "the source was let go and never taken back");
  },
);

test(
  `[${UNDER_TEST}] upgrade: SIGTERM to the old tree before the new one has joined leaves no handover socket behind, and the new one gives up in one line`,
  {
    timeout: 120_000,
  },
  async () => {
    const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-attack-"));
    const tree = await startTree([
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--admin",
      "off",
      "--processes",
      "1",
      "--threads",
      "1",
    ], directory);
    const pids = [tree.child.pid!];
    try {
      process.kill(pids[0]!, "SIGUSR2");
      process.kill(pids[0]!, "SIGTERM");
      const started = await waitFor(tree.output, /started a new supervisor \(pid (\d+)\)/);
      pids.push(Number(started[1]));
      // It may have exited already: wait on its pid rather than on an event that has passed.
      const stopBy = Date.now() + 20_000;
      while (isAlive(pids[0]!) && Date.now() < stopBy) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(!isAlive(pids[0]!), `the old tree stopped; output:\n${tree.output()}`);
      const left = readdirSync(directory).filter((name) => name.startsWith("tallyho-upgrade-"));
      assert.deepEqual(left, [], "the old tree left its handover socket behind");
      // The new supervisor finds nobody to take over from and says so, not as a bug.
      const deadline = Date.now() + 20_000;
      while (isAlive(pids[1]!) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(!isAlive(pids[1]!), `the new supervisor gave up; output:\n${tree.output()}`);
      assert.match(tree.output(), /tallyho: Cannot take over: the supervisor that started/);
      assert.doesNotMatch(tree.output(), /internal error/);
    } finally {
      await stopTrees(pids, directory);
    }
  },
);
