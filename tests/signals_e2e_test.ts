/**
 * Signals as operators send them (issue 26, items 1, 2 and 7): to every tallyho process at once
 * (`kill -HUP $(pidof tallyho)`, a terminal's Ctrl-C to the process group), to a serving process
 * alone, and the ones nginx users reach for (SIGQUIT, SIGUSR1).
 *
 * @module
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { LineClient, replyNumber } from "./_client.ts";
import { isAlive, startTallyho, UNDER_TEST } from "./_server.ts";
import { waitUntil } from "./_wait.ts";

const CHILD_SIGNALS = ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGINT", "SIGTERM"] as const;

test(`[${UNDER_TEST}] signals: HUP, USR1, USR2, QUIT, INT and TERM sent to a serving process leave it serving its connections with the numbers it holds`, async () => {
  const server = await startTallyho(["--processes", "2", "--threads", "1", "--framing", "line"]);
  try {
    const pids = [...server.childPids().values()];
    assert.equal(pids.length, 2, server.output());
    const clients = await Promise.all([0, 1, 2, 3].map(() => LineClient.connect(server.port)));
    const before = await Promise.all(clients.map((c) => c.request("hi\n")));
    for (const pid of pids) {
      for (const signal of CHILD_SIGNALS) process.kill(pid, signal);
    }
    // Each says once where the signals it ignores go (not Ctrl-C's INT nor a stop's TERM).
    for (const signal of ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT"]) {
      await waitUntil(
        () =>
          server.output().split(
            `${signal} ignored: signals go to the supervisor (pid ${server.pid})`,
          )
            .length === 3,
        { what: () => `two '${signal} ignored' lines:\n${server.output()}` },
      );
    }
    const after = await Promise.all(clients.map((c) => c.request("again\n")));
    for (const [i, line] of after.entries()) {
      assert.match(line, /^Hello World\d+$/, `connection ${i} answered after the signals`);
      assert.equal(line, before[i], "numbered by connection: the same number on it");
    }
    for (const pid of pids) assert.ok(isAlive(pid), `serving process ${pid} is still running`);
    assert.deepEqual([...server.childPids().values()], pids, "no process was restarted");
    assert.doesNotMatch(server.output(), /died|restarting/);
    for (const c of clients) c.close();
    assert.ok(isAlive(server.pid), "the supervisor got none of them");
  } finally {
    await server.stop();
  }
});

test(`[${UNDER_TEST}] signals: SIGUSR1 to the supervisor is ignored and said so; SIGQUIT drains and exits 0 as SIGTERM does`, async () => {
  const server = await startTallyho(["--framing", "line"]);
  try {
    process.kill(server.pid, "SIGUSR1");
    await server.waitFor(/SIGUSR1 ignored: logs go to stdout and stderr, nothing to reopen/);
    const client = await LineClient.connect(server.port);
    assert.match(await client.request("hi\n"), /^Hello World\d+$/);
    client.close();
    assert.equal(await server.stop("SIGQUIT"), 0, server.output());
    assert.match(server.output(), /SIGQUIT: draining/);
    assert.match(server.output(), /stopped; last number handed out: 1;/);
  } finally {
    await server.stop("SIGKILL");
  }
});

test(`[${UNDER_TEST}] signals: Ctrl-C (SIGINT to the whole process group) after 3 replies stops with a summary that counts them`, async () => {
  const server = await startTallyho(["--processes", "2", "--threads", "1"], { detached: true });
  try {
    const numbers: number[] = [];
    for (let i = 0; i < 3; i++) {
      const client = await LineClient.connect(server.port);
      numbers.push(replyNumber(await client.request("hi\n")));
      client.close();
    }
    process.kill(-server.pid, "SIGINT");
    assert.equal(await server.exited, 0, server.output());
    const summary = /stopped; last number handed out: (\d+); connections per process: \[([\d, ]*)\]/
      .exec(server.output());
    assert.ok(summary, server.output());
    assert.equal(Number(summary[1]), Math.max(...numbers), server.output());
    const perProcess = summary[2]!.split(",").map((n) => Number(n.trim()));
    assert.equal(perProcess.reduce((a, b) => a + b, 0), 3, `per process: ${summary[2]}`);
    assert.doesNotMatch(server.output(), /died/);
  } finally {
    try {
      process.kill(-server.pid, "SIGKILL");
    } catch {
      // Gone.
    }
  }
});
