/**
 * Attacks on an upgrade (issues 17 and 23): each test drives the handover into a corner where a
 * number could be served twice, or the server could be left without a tree that serves, and
 * checks that neither happens. Some stand in for the oldest tree (`startHandover` with a fake
 * supervisor), so they can lease exactly when they want, as an old tree's process that still
 * serves a long-lived connection would; others attack a real tree from outside, with programs
 * that share no code with tallyho (tests/fixtures/upgrade_impostor.py).
 *
 * @module
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { type LeaseSource, MemoryLeaseSource } from "../server/lease/lease_source.ts";
import { LeaseGuard } from "../server/lease/lease_guard.ts";
import {
  readStateFile,
  StateFileLeaseSource,
} from "../server/lease/sources/state_file/state_file.ts";
import { startHandover, UpgradeFailedError } from "../server/process/upgrade_handover.ts";
import type { Supervisor } from "../server/process/supervisor.ts";
import { LineClient, replyNumber } from "./_client.ts";
import {
  ADMIN_TOKEN,
  isAlive,
  runTallyho,
  startTallyho,
  tallyhoCommand,
  type TestServer,
  UNDER_TEST,
} from "./_server.ts";
import { python } from "./_python.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";
import {
  assertNoRepeats,
  describeRecording,
  HANDED_OVER,
  readyzNotReady,
  scratch,
  serveLines,
  startRecorder,
  startTree,
  stopPids,
  stopTree,
  treeArgs,
  upgrade,
} from "./_upgrade.ts";
import { BINARY, binaryTest, RUNNER, scriptCommand } from "./_target.ts";
import { sleep, waitUntil } from "./_wait.ts";
import { runtime } from "../server/adapters/mod.ts";

test("state file: a source closed for an upgrade grants nothing and never writes the file its new holder leases from", async () => {
  const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-attack-"));
  try {
    const path = join(directory, "numbers.state");
    const old = StateFileLeaseSource.open(path, 1, runtime);
    assert.equal(await old.lease(10), 1);
    // The old tree lets go (releaseSource), the new one takes the lock and leases on.
    await old.close();
    const taker = StateFileLeaseSource.open(path, 1, runtime);
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
    const old = StateFileLeaseSource.open(path, 1, runtime);
    assert.equal(await old.lease(10), 1);
    await old.close(); // released for the new tree
    const taker = StateFileLeaseSource.open(path, 1, runtime);
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

function waitFor(read: () => string, pattern: RegExp, timeoutMs = 60_000) {
  return waitUntil(() => pattern.exec(read()), {
    timeoutMs,
    what: () => `${pattern} in the output:\n${read()}`,
  });
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
  const { cmd, argv } = tallyhoCommand(["serve", ...treeArgs()]);
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
  await stopPids(pids);
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
        await sleep(20);
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
        await handover.recovered;
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

/** The stand-in successor in `mode`, run by the test's runtime. */
function successor(mode: string, count: number): { command: string; args: string[] } {
  const { cmd, argv } = scriptCommand(SUCCESSOR, [mode, String(count)], RUNNER);
  return { command: cmd, args: argv };
}

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
        ...successor("crash", 5000),
        env: process.env,
        adminPort: null,
        reopen: (above) => {
          reopened.push(above);
          return Promise.resolve(new MemoryLeaseSource(above + 1));
        },
      });
      await assert.rejects(handover.listening, UpgradeFailedError);
      await handover.recovered;
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
    const tree = await startTree(treeArgs(["--config", config]));
    try {
      const served = await serveLines(tree.port, 5);
      // The operator makes the numbers durable (a restart-only key) and upgrades to apply it.
      writeFileSync(config, JSON.stringify({ state: join(directory, "numbers.state") }) + "\n");
      await upgrade(tree);
      served.push(...await serveLines(tree.port, 5));
      assert.equal(new Set(served).size, served.length, "no number served twice");
      assert.ok(served.slice(5).every((n) => n > served[4]!), `above the old tree: ${served}`);
    } finally {
      await stopTree(tree);
      rmSync(directory, { recursive: true, force: true });
    }
  },
);

const ENTRY = fileURLToPath(new URL("fixtures/upgrade_entry.ts", import.meta.url));

// Binds 127.0.0.1:PORT (SO_REUSEADDR, as any server does, not SO_REUSEPORT) as often as it can
// until the file STOP exists (30 s at most); holds the port for a second once it has it, and
// prints whether it ever had it.
const GRAB_PORT = `
import json, os, socket, sys, time
port, stop, trying = int(sys.argv[1]), sys.argv[2], sys.argv[3]
tries, bound, end = 0, False, time.time() + 30
while not bound and not os.path.exists(stop) and time.time() < end:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tries += 1
    try:
        s.bind(("127.0.0.1", port))
        s.listen(8)
        bound = True
        time.sleep(1)
    except OSError:
        pass
    s.close()
    if tries == 1:
        open(trying, "w").close()
print(json.dumps({"bound": bound, "tries": tries}))
`;

test(
  // From source whatever the suite drives: the stand-in is this file run by the test's runtime.
  `upgrade (from source): a new tree that dies after saying it listens, before the old one let go, leaves the old tree serving above the new tree's numbers, on an admin port no other process could bind meanwhile`,
  {
    skip: skipOffCi(toolMissing("python3", "python3")),
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
      // Another local process tries to take the admin port all along.
      const stopGrab = join(directory, "stop-grab");
      const trying = join(directory, "grab-trying");
      const grab = python(GRAB_PORT, [new URL(admin).port, stopGrab, trying], 40_000) as Promise<
        { bound: boolean; tries: number }
      >;
      // The upgrade starts once the attacker tries (a loaded machine starts Python slowly: with
      // a fixed 200 ms wait it had not tried once before the test ended).
      await waitUntil(() => existsSync(trying), { what: "the attacker's first try" });
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
      // It took the upgrade as failed, so it never began a drain: it neither handed over nor
      // stopped, and serves on.
      await waitFor(read, /exited after it listened, before this tree let go; this tree serves on/);
      assert.doesNotMatch(output, /handed over to pid|stopped; last number handed out/);
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
      writeFileSync(stopGrab, "");
      const grabbed = await grab;
      assert.ok(grabbed.tries > 100, `the attacker tried: ${JSON.stringify(grabbed)}`);
      assert.equal(grabbed.bound, false, "another process bound the admin port meanwhile");
    } finally {
      child.kill("SIGTERM");
      const gone = () => child.exitCode !== null || child.signalCode !== null;
      await waitUntil(gone, { timeoutMs: 15_000 }).catch(() => {});
      if (!gone()) child.kill("SIGKILL");
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
    const tree = await startTree(treeArgs(["--state", state]));
    try {
      const served = await serveLines(tree.port, 5);
      process.kill(tree.pid, "SIGUSR2");
      tree.pids.push(Number((await tree.waitFor(/started a new supervisor \(pid (\d+)\)/))[1]));
      // The new tree has the lock (it reads the file only once it holds it); the old one is told
      // to stop before it has let go: its stop closes its source a second time.
      await tree.waitFor(/numbers continue from \d+/, 2);
      process.kill(tree.pids[0]!, "SIGTERM");
      await tree.waitFor(/stopped; last number handed out/);
      // The new tree finishes its start alone (the channel ended before it listened).
      await tree.waitFor(new RegExp(`took over from pid ${tree.pids[0]} on port \\d+`), 1, 20_000);
      // It serves, and past its first block: it leases from the file again.
      served.push(...await serveLines(tree.port, 5000));
      assert.equal(new Set(served).size, served.length, "no number served twice");
      assert.ok(served.slice(5).every((n) => n > served[4]!), "the new tree numbers above");
      assert.ok(existsSync(`${state}.lock`), "the new tree's lock file is still there");
      assert.ok(readStateFile(state)! > Math.max(...served), "the file is above every number");
    } finally {
      await stopTree(tree);
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
        ...successor("hello-crash", 0),
        env: process.env,
        adminPort: null,
        reopen: (above) => Promise.resolve(new MemoryLeaseSource(above + 1)),
      });
      await assert.rejects(handover.listening, UpgradeFailedError);
      // A hello read after the failure must not take the source away for good.
      await handover.recovered;
      if (calls.length === 1) stuck.push(`round ${round}: ${calls.join(", ")}`);
    }
    assert.deepEqual(stuck, [], "the source was let go and never taken back");
  },
);

for (const signal of ["SIGTERM", "SIGKILL"] as const) {
  test(
    `[${UNDER_TEST}] upgrade: ${signal} to the old tree just after it started the new one leaves nothing behind in TMPDIR, and the new one gives up in one line`,
    {
      timeout: 120_000,
    },
    async () => {
      const tree = await startTree(treeArgs());
      try {
        process.kill(tree.pid, "SIGUSR2");
        const started = await tree.waitFor(/started a new supervisor \(pid (\d+)\)/);
        process.kill(tree.pid, signal);
        tree.pids.push(Number(started[1]));
        await waitUntil(() => !isAlive(tree.pids[0]!), { timeoutMs: 20_000, what: tree.output });
        // The new supervisor finds nobody to take over from and says so, not as a bug; or, when
        // the old one had answered its hello before the signal came (a quick new tree), it took
        // over and serves alone, numbering above the old one's mark.
        const outcome = await waitUntil(() => {
          const output = tree.output();
          if (/upgrade: took over from pid \d+/.test(output) && isAlive(tree.pids[1]!)) {
            return "took over";
          }
          return !isAlive(tree.pids[1]!) && "gave up";
        }, { timeoutMs: 20_000, what: tree.output });
        if (outcome === "gave up") {
          assert.match(tree.output(), /tallyho: Cannot take over: the supervisor that started/);
        }
        assert.doesNotMatch(tree.output(), /internal error/);
        assert.deepEqual(
          readdirSync(scratch(tree.directory)).filter((name) => name.startsWith("tallyho-up")),
          [],
          "the old tree left a handover socket behind",
        );
      } finally {
        await stopTree(tree);
      }
    },
  );
}

const IMPOSTOR = fileURLToPath(new URL("fixtures/upgrade_impostor.py", import.meta.url));

test(
  `[${UNDER_TEST}] upgrade: an impostor of the same user that watches for the handover cannot join it; the real new tree takes over and clients are served throughout`,
  {
    skip: skipOffCi(toolMissing("python3", "python3")),
    timeout: 120_000,
  },
  async () => {
    const tree = await startTree(treeArgs([], { admin: "127.0.0.1:0", processes: 2 }));
    const stopFile = join(tree.directory, "impostor-stop");
    const impostor = spawn("python3", [IMPOSTOR, scratch(tree.directory), "60", stopFile], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let report = "";
    impostor.stdout!.on("data", (chunk: Buffer) => (report += chunk.toString()));
    const impostorDone = new Promise<void>((resolve) => impostor.on("close", () => resolve()));
    try {
      const recorder = startRecorder(tree, { perRequest: 2, longLived: 2, maxSeconds: 60 });
      await sleep(300);
      for (let i = 0; i < 3; i++) await upgrade(tree, i === 1 ? "admin" : "signal");
      writeFileSync(stopFile, "");
      await impostorDone;
      const recording = await recorder.stop();
      const seen = JSON.parse(report) as {
        paths: Record<string, string>;
        descriptors: Record<string, string>;
      };
      console.log(
        `[${UNDER_TEST}] impostor: ${JSON.stringify(seen)}; ${describeRecording(recording)}`,
      );
      assert.deepEqual(
        Object.entries(seen.paths).filter(([, sent]) => /handover/.test(sent)),
        [],
        "the impostor was handed the numbers",
      );
      assert.deepEqual(Object.keys(seen.paths), [], "a handover socket has a path");
      assert.deepEqual(
        Object.entries(seen.descriptors).filter(([, what]) => what === "opened and wrote"),
        [],
        "the impostor opened the new tree's channel",
      );
      // Each handover went to the process the old tree started, which serves now.
      for (const pid of tree.pids.slice(1)) {
        assert.match(tree.output(), new RegExp(`started a new supervisor \\(pid ${pid}\\)`));
      }
      assert.ok(isAlive(tree.pid), "the last tree serves");
      assert.deepEqual(recording.errors, [], "no client refused, reset or cut");
      assertNoRepeats(recording);
      assert.deepEqual(readyzNotReady(recording), [], "/readyz 200 (or the port passing)");
      assert.equal((await serveLines(tree.port, 3)).length, 3);
    } finally {
      writeFileSync(stopFile, "");
      await impostorDone;
      await stopTree(tree);
    }
  },
);

// The compiled binary only (binaryTest): from source the program an upgrade runs is the runtime,
// which a deploy does not move.

binaryTest(
  `[${UNDER_TEST}] upgrade: with the binary moved away or not executable, an upgrade is refused at once (409), gives nothing up, and a later one works`,
  {
    timeout: 120_000,
  },
  async () => {
    const state = mkdtempSync(join(tmpdir(), "tallyho-upgrade-attack-"));
    const statePath = join(state, "numbers.state");
    const tree = await startTree(treeArgs(["--state", statePath], { admin: "127.0.0.1:0" }));
    const admin = `http://127.0.0.1:${tree.adminPort}`;
    const post = () =>
      fetch(`${admin}/v1/upgrade`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
    try {
      const served = await serveLines(tree.port, 3);
      const executable = tree.executable!;
      // Mid-deploy: the running binary moved away.
      renameSync(executable, `${executable}.moved`);
      const moved = await post();
      const movedBody = await moved.json() as { error?: { message?: string } };
      assert.equal(moved.status, 409, JSON.stringify(movedBody));
      assert.match(
        movedBody.error?.message ?? "",
        /cannot be run \(ENOENT\).*this tree serves on/,
      );
      // Not executable.
      copyFileSync(`${executable}.moved`, executable);
      chmodSync(executable, 0o644);
      process.kill(tree.pid, "SIGUSR2");
      await tree.waitFor(/SIGUSR2: Cannot upgrade: \S+ cannot be run \(EACCES\)/);
      // Nothing was given up: the state file's lock is held, and the tree serves and is ready.
      const second = await runTallyho(
        ["serve", "--port", "0", "--admin", "off", "--state", statePath],
        15_000,
      );
      assert.match(second.stdout + second.stderr, /is in use by another tallyho/);
      const ready = await fetch(`${admin}/readyz`);
      assert.equal(ready.status, 200, await ready.text());
      served.push(...await serveLines(tree.port, 3));
      const info = await fetch(`${admin}/v1/info`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      }).then((r) => r.json()) as { upgrade?: { state: string; reason?: string } };
      assert.equal(info.upgrade?.state, "failed");
      // The binary back in place: the next upgrade works.
      chmodSync(executable, 0o755);
      await upgrade(tree, "admin");
      served.push(...await serveLines(tree.port, 3));
      assert.equal(new Set(served).size, served.length, "no number served twice");
      assert.deepEqual(
        readdirSync(scratch(tree.directory)).filter((name) => name.startsWith("tallyho-up")),
        [],
      );
    } finally {
      await stopTree(tree);
      rmSync(state, { recursive: true, force: true });
    }
  },
);

binaryTest(
  `[${UNDER_TEST}] upgrade: started through a symlink, an upgrade runs what the link points at now, and the log names the version that took over`,
  {
    timeout: 120_000,
  },
  async () => {
    const tree = await startTree(treeArgs(), {
      executable: (directory) => join(directory, "tallyho-v1"),
      startAs: (directory) => {
        symlinkSync("tallyho-v1", join(directory, "tallyho"));
        return join(directory, "tallyho");
      },
    });
    try {
      const v2 = join(tree.directory, "tallyho-v2");
      copyFileSync(BINARY!, v2);
      chmodSync(v2, 0o755);
      // A symlink-swap deploy: a new link renamed over the old one.
      symlinkSync("tallyho-v2", join(tree.directory, "tallyho.next"));
      renameSync(join(tree.directory, "tallyho.next"), join(tree.directory, "tallyho"));
      process.kill(tree.pid, "SIGUSR2");
      const handed = await tree.waitFor(HANDED_OVER);
      const pid = Number(handed[1]);
      tree.pids.push(pid);
      assert.equal(readlinkSync(`/proc/${pid}/exe`), v2, "the new supervisor runs v2");
      assert.match(handed[0], /handed over to pid \d+ \(tallyho \S+ on bun \S+\)/);
      assert.match(
        tree.output(),
        new RegExp(`started a new supervisor \\(pid ${pid}\\): ${tree.directory}/tallyho serve`),
      );
      assert.ok((await serveLines(tree.port, 3)).length === 3);
    } finally {
      await stopTree(tree);
    }
  },
);

/** The descriptor of `pid` that is open on a file whose path ends with `suffix`, or null. */
function descriptorOn(pid: number, suffix: string): number | null {
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${name}`).endsWith(suffix)) return Number(name);
    } catch {
      // Closed since the listing.
    }
  }
  return null;
}

test(
  `[${UNDER_TEST}] upgrade variables: TALLYHO_ADMIN_LISTENER_FD on a start that is no upgrade closes none of the server's descriptors, so its state file stays locked and no second server numbers from it`,
  {
    timeout: 120_000,
  },
  async () => {
    const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-attack-"));
    const state = join(directory, "numbers.state");
    const args = ["--processes", "1", "--threads", "1", "--state", state];
    const servers: TestServer[] = [];
    try {
      // Where this build keeps the state file's lock: the same descriptor at every start.
      const first = await startTallyho(args);
      servers.push(first);
      const lockFd = descriptorOn(first.pid, "numbers.state.lock");
      assert.notEqual(lockFd, null, "the server holds its state file's lock");
      await first.stop();
      // The variable only an upgrade's old tree sets, given on an ordinary start: pointing at that
      // descriptor, at stdin, stdout and stderr.
      for (const fd of [lockFd!, 0, 1, 2]) {
        const server = await startTallyho(args, {
          env: { TALLYHO_ADMIN_LISTENER_FD: String(fd) },
        });
        servers.push(server);
        assert.equal(
          descriptorOn(server.pid, "numbers.state.lock"),
          lockFd,
          `TALLYHO_ADMIN_LISTENER_FD=${fd}: the lock is still held; output:\n${server.output()}`,
        );
        const second = await runTallyho([
          "serve",
          "--host",
          "127.0.0.1",
          "--port",
          "0",
          "--admin",
          "off",
          ...args,
        ], 10_000);
        assert.notEqual(second.code, 0, `a second server started on the same state file`);
        assert.match(second.stderr, /is in use by another tallyho/);
        assert.equal((await server.admin("/readyz")).status, 200);
        await server.stop();
      }
    } finally {
      for (const server of servers) await server.stop("SIGKILL").catch(() => {});
      rmSync(directory, { recursive: true, force: true });
    }
  },
);
