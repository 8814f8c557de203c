/**
 * A pool of one thread serves on the process's main thread (server/threads/inline_thread.ts):
 * no worker is started for it, threads added live are workers beside it, numbers stay unique
 * across every change, and an error in the inline thread ends the process (its supervisor then
 * starts another, as tests/processes_test.ts's kill -9 of a child shows).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { oneRequest } from "./_client.ts";
import { ROOT, scriptCommand } from "./_target.ts";
import { startServer } from "../server/start_server.ts";

/** Counts the workers made while `body` runs, by wrapping the global `Worker` constructor. */
async function countingWorkers<T>(body: (made: () => number) => Promise<T>): Promise<T> {
  const Original = globalThis.Worker;
  let made = 0;
  globalThis.Worker = class extends Original {
    constructor(...args: ConstructorParameters<typeof Worker>) {
      super(...args);
      made++;
    }
  } as typeof Worker;
  try {
    return await body(() => made);
  } finally {
    globalThis.Worker = Original;
  }
}

async function requests(port: number, count: number): Promise<number[]> {
  const replies = await Promise.all(Array.from({ length: count }, () => oneRequest(port)));
  assert.ok(replies.every((n) => n !== null), "every client was answered");
  return replies as number[];
}

test("thread pool: one thread runs no worker; grown live to 3 it adds 2 beside it, shrunk to 1 serves on, numbers unique throughout", async () => {
  await countingWorkers(async (made) => {
    const server = await startServer(
      { host: "127.0.0.1", port: 0, threads: 1, maxConnectionsPerAddress: 0 },
      { watchDescriptors: false },
    );
    try {
      const seen = await requests(server.port, 200);
      assert.equal(made(), 0, "a pool of one thread started a worker");
      await server.configure({ ...server.config, threads: 3 });
      assert.equal(made(), 2, "growing from 1 to 3 threads starts two workers");
      assert.equal(server.stats().length, 3);
      seen.push(...await requests(server.port, 300));
      await server.configure({ ...server.config, threads: 1 });
      assert.equal(server.stats().length, 1);
      seen.push(...await requests(server.port, 200));
      await server.configure({ ...server.config, threads: 2 });
      assert.equal(made(), 3, "growing again starts one worker, beside the inline thread");
      seen.push(...await requests(server.port, 200));
      assert.equal(seen.length, 900);
      assert.equal(new Set(seen).size, seen.length, "a number was repeated");
      const accepted = server.stats().reduce((sum, t) => sum + t.connectionsAccepted, 0);
      assert.ok(accepted >= 400, `the threads' stats count the clients: ${accepted}`);
    } finally {
      await server.shutdown();
    }
  });
});

test("thread pool: a pool started with 2 threads runs them both in workers", async () => {
  await countingWorkers(async (made) => {
    const server = await startServer(
      { host: "127.0.0.1", port: 0, threads: 2, maxConnectionsPerAddress: 0 },
      { watchDescriptors: false },
    );
    try {
      assert.equal(made(), 2);
      const seen = await requests(server.port, 100);
      assert.equal(new Set(seen).size, 100, "a number was repeated");
    } finally {
      await server.shutdown();
    }
  });
});

test("inline thread: an error in its message handler ends the process with exit 1, as a worker's ends the worker", () => {
  const { cmd, argv } = scriptCommand(join(ROOT, "tests/fixtures/inline_thread_crash.ts"));
  const run = spawnSync(cmd, argv, { encoding: "utf8", timeout: 30_000 });
  assert.equal(run.status, 1, `exit ${run.status}: ${run.stdout}${run.stderr}`);
  assert.doesNotMatch(run.stdout, /survived/);
  assert.match(run.stderr, /TypeError/);
});
