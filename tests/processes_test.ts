/**
 * End to end: processes on top of threads. Numbers never repeat across processes, across a child
 * killed mid-load, or across `kill -9` of the whole tree and a restart on the same state file.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { inBatches, LineClient, oneRequest, replyNumber } from "./_client.ts";
import { burstThenKillTree } from "./_kill_tree.ts";
import { sleep, waitUntil } from "./_wait.ts";
import { isAlive, startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";
import { binaryTest } from "./_target.ts";
import { startTree, stopTree, treeArgs } from "./_upgrade.ts";

function perProcessCounts(server: TestServer): number[] {
  const match = /connections per process: \[([\d, ]*)\]/.exec(server.output());
  assert.ok(match, `no per-process counts in:\n${server.output()}`);
  return match[1]!.split(",").map(Number);
}

test(`[${UNDER_TEST}] 2 processes x 2 threads: 20,000 connections get 20,000 distinct numbers and reach both processes`, async () => {
  const server = await startTallyho(["--processes", "2", "--threads", "2", "--framing", "line"]);
  try {
    const numbers = await inBatches(
      Array.from({ length: 20_000 }),
      256,
      () => oneRequest(server.port),
    );
    assert.equal(numbers.filter((n) => n === null).length, 0, "every connection answered");
    assert.equal(new Set(numbers).size, 20_000, "a number was handed to two connections");
  } finally {
    assert.equal(await server.stop(), 0);
  }
  const counts = perProcessCounts(server);
  assert.equal(counts.length, 2);
  assert.equal(counts[0]! + counts[1]!, 20_000);
  assert.ok(counts.every((c) => c > 0), `a process got no connection: ${counts}`);
});

test(`[${UNDER_TEST}] 2 processes x 2 threads: 200,000 replies in message numbering, all distinct`, async () => {
  const server = await startTallyho([
    "--processes",
    "2",
    "--threads",
    "2",
    "--framing",
    "line",
    "--number-by",
    "message",
  ]);
  try {
    const perClient = await inBatches(Array.from({ length: 100 }), 100, async () => {
      const client = await LineClient.connect(server.port);
      try {
        for (let i = 0; i < 4; i++) client.send("x\n".repeat(500));
        const lines = await client.lines(2000, 20_000);
        return lines.map((line) => replyNumber(line));
      } finally {
        client.close();
      }
    });
    const all = perClient.flat();
    assert.equal(all.length, 200_000);
    assert.equal(new Set(all).size, 200_000, "a number was repeated");
  } finally {
    assert.equal(await server.stop(), 0);
  }
  assert.ok(perProcessCounts(server).every((c) => c > 0), "connections reached every process");
});

test(`[${UNDER_TEST}] kill -9 of one child mid-load: service continues, the child comes back, no number repeats`, async () => {
  const server = await startTallyho(["--processes", "2", "--threads", "1", "--framing", "line"]);
  try {
    const victim = server.childPids().get(1)!;
    assert.ok(victim > 0, "child 1's pid is logged");
    const seen: number[] = [];
    let failures = 0;
    let stop = false;
    const load = (async () => {
      const deadline = Date.now() + 15_000;
      while (!stop && Date.now() < deadline) {
        const batch = await Promise.all(Array.from({ length: 20 }, () => oneRequest(server.port)));
        for (const n of batch) n === null ? failures++ : seen.push(n);
      }
    })();
    await waitUntil(() => seen.length > 0, { what: "replies before the kill" });
    const before = seen.length;
    process.kill(victim, "SIGKILL");
    await server.waitFor(new RegExp(`process 1 \\(pid ${victim}\\) died`));
    const back = await server.waitFor(
      /process 1 listening \(pid (\d+)\)[^]*process 1 listening \(pid (\d+)\)/,
    );
    assert.notEqual(Number(back[2]), victim, "a new child took its place");
    const afterRestart = seen.length;
    await waitUntil(() => seen.length > afterRestart, { what: "replies after the restart" });
    stop = true;
    await load;
    assert.ok(afterRestart > before, "served while the child was down or restarting");
    assert.equal(new Set(seen).size, seen.length, "a number was repeated");
    // Connections queued on the dying child's listener may be reset; everyone else is served.
    assert.ok(failures < seen.length / 10, `${failures} failures against ${seen.length} replies`);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

// A deploy deletes or replaces the binary under a running tree before it upgrades it: a child
// killed meanwhile must come back as the program its supervisor runs. Only the binary has a file
// of its own to lose (from source the runtime and the scripts stay).
binaryTest(
  `[${UNDER_TEST}] kill -9 of one child after the binary was deleted, then replaced by another program: the child comes back as the running program, no number repeats, and SIGTERM stops the tree`,
  async () => {
    const tree = await startTree(treeArgs([], { processes: 2 }));
    try {
      const seen: number[] = [];
      const ask = async () => {
        for (let i = 0; i < 20; i++) {
          const n = await oneRequest(tree.port);
          assert.notEqual(n, null, "every connection answered");
          seen.push(n!);
        }
      };
      await ask();
      const executable = tree.executable!;
      const restart = async (index: number, round: number) => {
        const listening = new RegExp(`process ${index} listening \\(pid (\\d+)\\)`);
        const victim = Number((await tree.waitFor(listening, round))[1]);
        if (round === 1 && index === 1) {
          // Started by its path, a child keeps the program's name (ps -C, top, pkill): by
          // /proc/self/exe it would be 'exe'.
          assert.equal(readFileSync(`/proc/${victim}/comm`, "utf8").trim(), basename(executable));
        }
        process.kill(victim, "SIGKILL");
        const back = await tree.waitFor(listening, round + 1);
        assert.notEqual(Number(back[1]), victim, "a new child took its place");
      };
      rmSync(executable);
      await restart(1, 1);
      await ask();
      // Another program at the path, as a half-done deploy could leave it.
      writeFileSync(`${executable}.new`, "#!/bin/sh\necho 'not tallyho' >&2\nexit 3\n");
      chmodSync(`${executable}.new`, 0o755);
      renameSync(`${executable}.new`, executable);
      await restart(0, 1);
      await restart(1, 2);
      await ask();
      assert.doesNotMatch(tree.output(), /not tallyho|ENOENT|could not start|before listening/);
      assert.equal(new Set(seen).size, seen.length, "a number was repeated");
      process.kill(tree.pid, "SIGTERM");
      await waitUntil(() => !isAlive(tree.pid), { what: "the supervisor's exit on SIGTERM" });
      assert.match(tree.output(), /stopped; last number handed out/);
    } finally {
      await stopTree(tree);
    }
  },
);

test(`[${UNDER_TEST}] 10 rounds of kill -9 of the whole tree on one state file: no repeats, each round above the last`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-state-"));
  const state = join(dir, "numbers.state");
  const rounds: number[][] = [];
  try {
    for (let round = 0; round < 10; round++) {
      const server = await startTallyho([
        "--processes",
        "2",
        "--threads",
        "2",
        "--framing",
        "line",
        "--number-by",
        "message",
        "--state",
        state,
      ]);
      // Killed at a random moment in the burst: supervisor and every child, all at once.
      const numbers = await burstThenKillTree(server, 8, 100, 500);
      assert.ok(numbers.length > 0, `round ${round} served nothing`);
      rounds.push(numbers);
    }
    const all = rounds.flat();
    assert.equal(new Set(all).size, all.length, "a number was repeated across restarts");
    for (let r = 1; r < rounds.length; r++) {
      const earlierMax = rounds.slice(0, r).flat().reduce((a, b) => Math.max(a, b), 0);
      const roundMin = rounds[r]!.reduce((a, b) => Math.min(a, b), Infinity);
      assert.ok(roundMin > earlierMax, `round ${r} starts at ${roundMin}, not above ${earlierMax}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`[${UNDER_TEST}] children crashing in a loop stop the server with a clear line and exit 1`, async () => {
  const server = await startTallyho(["--processes", "1", "--threads", "1"]);
  let killed = 0;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && server.child.exitCode === null) {
    const pid = server.childPids().get(0);
    if (pid !== undefined && isAlive(pid)) {
      process.kill(pid, "SIGKILL");
      killed++;
    }
    await sleep(50);
    if (/crash|stopping/.test(server.output()) && killed >= 5) break;
  }
  const code = await server.exited;
  assert.equal(code, 1, `exit code; output:\n${server.output()}`);
  assert.match(server.output(), /stopping: 5 child processes died within 10000 ms/);
});

test(`[${UNDER_TEST}] SIGTERM under load: every accepted client gets its reply or a clean close, and the tree is gone in time`, async () => {
  const server = await startTallyho([
    "--processes",
    "2",
    "--threads",
    "2",
    "--framing",
    "line",
    "--drain-timeout",
    "3s",
  ]);
  const children = [...server.childPids().values()];
  const outcomes = await Promise.all(
    Array.from({ length: 60 }, async () => {
      const client = await LineClient.connect(server.port);
      let errorCode = "";
      client.socket.on(
        "error",
        (error: Error & { code?: string }) => (errorCode = error.code ?? "?"),
      );
      let sent = 0;
      const deadline = Date.now() + 8000;
      while (!client.closed && Date.now() < deadline) {
        sent++;
        client.send("x\n");
        const lines = await client.lines(sent, 5000);
        if (lines.length < sent) break; // closed before answering this request
      }
      const replies = (await client.lines(0, 0)).length;
      client.close();
      return { sent, replies, errorCode, closed: client.closed };
    }).concat([
      (async () => {
        await sleep(400); // the load runs a while before the SIGTERM
        const started = Date.now();
        const code = await server.stop("SIGTERM");
        return { code, ms: Date.now() - started };
      })() as never,
    ]),
  );
  const { code, ms } = outcomes.pop() as unknown as { code: number; ms: number };
  assert.equal(code, 0, server.output());
  assert.ok(ms < 3000 + 2000, `the tree took ${ms} ms to stop`);
  for (const pid of children) assert.ok(!isAlive(pid), `child ${pid} outlived the supervisor`);
  for (const outcome of outcomes) {
    assert.ok(outcome.replies > 0, "every client was answered before the drain");
    assert.ok(outcome.closed, "every connection was closed by the server");
    assert.ok(
      outcome.replies >= outcome.sent - 1,
      `requests went unanswered: ${JSON.stringify(outcome)}`,
    );
    assert.equal(outcome.errorCode, "", `a connection was reset: ${JSON.stringify(outcome)}`);
  }
});
