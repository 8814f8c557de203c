/**
 * Upgrades without downtime (`kill -USR2`, `POST /v1/upgrade`), under steady load from an
 * independent Python client (tests/fixtures/upgrade_client.py) that opens a connection per
 * request, keeps long-lived connections, polls `/readyz`, and records every number and error.
 *
 * Needs net.ipv4.tcp_migrate_req=1, so that connections queued on a listener the old tree closes
 * move to the new tree's instead of being reset: the test sets it when it can (root) and puts the
 * old value back; where it cannot, it skips off CI.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ADMIN_TOKEN, isAlive, tallyhoCommand, UNDER_TEST } from "./_server.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";
import { redisUnavailable, startRedis } from "./_redis.ts";
import { skipEtcd, startEtcd } from "./_etcd.ts";

const CLIENT = fileURLToPath(new URL("fixtures/upgrade_client.py", import.meta.url));
const MIGRATE = "/proc/sys/net/ipv4/tcp_migrate_req";

/** Why the kernel setting cannot be had here, or null (then it is 1 while the tests run). */
function migrateUnavailable(): string | null {
  try {
    if (readFileSync(MIGRATE, "utf8").trim() === "1") return null;
    if (process.getuid?.() !== 0) return "needs net.ipv4.tcp_migrate_req=1 (or root to set it)";
    return null;
  } catch {
    return "this kernel has no net.ipv4.tcp_migrate_req (Linux 5.14 or later)";
  }
}

/** Sets tcp_migrate_req to 1 and returns how to put the old value back. */
function enableMigration(): () => void {
  const before = readFileSync(MIGRATE, "utf8").trim();
  if (before !== "1") writeFileSync(MIGRATE, "1");
  return () => {
    if (before !== "1") writeFileSync(MIGRATE, before);
  };
}

const SKIP = skipOffCi(toolMissing("python3", "python3") ?? migrateUnavailable());

/** A server tree chain started by the test: the first supervisor and every one after it. */
interface Chain {
  port: number;
  adminPort: number;
  /** The current supervisor's pid. */
  pid: number;
  /** Every supervisor pid seen. */
  pids: number[];
  output(): string;
  /** Resolves once `pattern` has matched `count` times. */
  waitForCount(pattern: RegExp, count: number, timeoutMs?: number): Promise<RegExpExecArray>;
  first: ChildProcess;
  directory: string;
  /** The executable the chain runs (a copy of the compiled binary), or null from source. */
  executable: string | null;
}

/** The servers' TMPDIR inside the test's directory. */
function scratch(directory: string): string {
  const path = join(directory, "tmp");
  mkdirSync(path, { recursive: true });
  return path;
}

async function startChain(args: string[]): Promise<Chain> {
  const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-test-"));
  const command = tallyhoCommand(["serve", ...args]);
  let executable: string | null = null;
  if (process.env.TALLYHO_BIN) {
    // A copy of its own, so that the test can put a new binary, or a broken one, at its path.
    executable = join(directory, "tallyho");
    copyFileSync(process.env.TALLYHO_BIN, executable);
    chmodSync(executable, 0o755);
  }
  const child = spawn(executable ?? command.cmd, command.argv, {
    cwd: executable === null ? command.cwd : directory,
    stdio: ["ignore", "pipe", "pipe"],
    // A temporary directory of its own, to check that no tree leaves its handover socket behind.
    env: { ...process.env, TALLYHO_ADMIN_TOKEN: ADMIN_TOKEN, TMPDIR: scratch(directory) },
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const chain: Chain = {
    port: 0,
    adminPort: 0,
    pid: child.pid!,
    pids: [child.pid!],
    output: () => output,
    waitForCount: async (pattern, count, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const matches = [...output.matchAll(new RegExp(pattern.source, "g"))];
        if (matches.length >= count) return matches[count - 1]! as RegExpExecArray;
        if (Date.now() > deadline) {
          throw new Error(`${pattern} did not appear ${count} times; output:\n${output}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    first: child,
    directory,
    executable,
  };
  const listening = await chain.waitForCount(/listening on \S+:(\d+)/, 1, 20_000);
  const admin = await chain.waitForCount(/admin API on http:\/\/127\.0\.0\.1:(\d+)\//, 1);
  chain.port = Number(listening[1]);
  chain.adminPort = Number(admin[1]);
  return chain;
}

/** Stops the chain's current supervisor and waits until every supervisor seen is gone. */
async function stopChain(chain: Chain): Promise<void> {
  for (const pid of chain.pids) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // Gone already.
    }
  }
  const deadline = Date.now() + 15_000;
  while (chain.pids.some(isAlive) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  for (const pid of chain.pids.filter(isAlive)) process.kill(pid, "SIGKILL");
  rmSync(chain.directory, { recursive: true, force: true });
}

interface ClientFigures {
  replies: number;
  repeats: number;
  first_repeats: number[];
  errors: number;
  first_errors: [string, string, number][];
  clean_closes: { long_lived: number; unanswered_at_close: number };
  longest_gap_ms: number;
  longest_gap_kind: string;
  readyz_ok: number;
  readyz_bad: unknown[];
  readyz_bad_count: number;
}

/** Starts the independent client; stop it by calling the returned `stop`. */
function startClient(chain: Chain, maxSeconds: number) {
  const numbersFile = join(chain.directory, "numbers");
  const stopFile = join(chain.directory, "stop");
  const child = spawn("python3", [
    CLIENT,
    String(chain.port),
    String(chain.adminPort),
    String(maxSeconds),
    "4",
    "4",
    numbersFile,
    stopFile,
  ], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const done = new Promise<ClientFigures & { numbers: number[] }>((resolve, reject) =>
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`upgrade_client.py exited ${code}: ${err}`));
      const figures = JSON.parse(out.trim().split("\n").at(-1)!) as ClientFigures;
      const numbers = readFileSync(numbersFile, "utf8").split("\n").filter((l) => l !== "")
        .map(Number);
      resolve({ ...figures, numbers });
    })
  );
  return {
    stop: () => {
      writeFileSync(stopFile, "");
      return done;
    },
  };
}

/**
 * Upgrades the chain once, with SIGUSR2 or `POST /v1/upgrade`, and waits for the handover;
 * returns how long it took. On the compiled binary a new copy is put at the executable's path
 * first, as a deploy would.
 */
async function upgradeOnce(chain: Chain, done: number, via: "signal" | "admin"): Promise<number> {
  if (chain.executable !== null) {
    copyFileSync(process.env.TALLYHO_BIN!, `${chain.executable}.new`);
    chmodSync(`${chain.executable}.new`, 0o755);
    renameSync(`${chain.executable}.new`, chain.executable);
  }
  if (via === "signal") process.kill(chain.pid, "SIGUSR2");
  else {
    const url = `http://127.0.0.1:${chain.adminPort}/v1/upgrade`;
    const unauthorized = await fetch(url, { method: "POST" });
    await unauthorized.body?.cancel();
    assert.equal(unauthorized.status, 401, "an upgrade needs the token");
    const init = { method: "POST", headers: { authorization: `Bearer ${ADMIN_TOKEN}` } };
    const response = await fetch(url, init);
    const body = await response.json() as { state: string; pid: number; fromPid: number };
    assert.equal(response.status, 202, JSON.stringify(body));
    assert.equal(body.state, "upgrading");
    assert.equal(body.fromPid, chain.pid);
    // A second one while the first is under way is refused (the new tree is still starting).
    const again = await fetch(url, init);
    await again.body?.cancel();
    assert.equal(again.status, 409);
  }
  const handed = await chain.waitForCount(
    /upgrade: handed over to pid (\d+): handover took (\d+) ms/,
    done + 1,
  );
  chain.pid = Number(handed[1]);
  chain.pids.push(chain.pid);
  return Number(handed[2]);
}

async function tenUpgradesUnderLoad(
  extra: string[],
  upgrades: number,
  via: "signal" | "admin",
): Promise<void> {
  const restore = enableMigration();
  const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-config-"));
  const config = join(directory, "tallyho.json");
  // The port comes from the file, so that a failed upgrade can ask for a busy one.
  writeFileSync(config, '{ "port": 0 }\n');
  const chain = await startChain([
    "--host",
    "127.0.0.1",
    "--admin",
    "127.0.0.1:0",
    "--processes",
    "2",
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
    ...extra,
  ]);
  try {
    const client = startClient(chain, 80);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const handovers: number[] = [];
    for (let i = 0; i < upgrades; i++) {
      handovers.push(await upgradeOnce(chain, i, via));
      // The load goes on between upgrades, on the new tree while the old one drains.
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    // Failed upgrades: a bad config file, a port another program holds, and on the binary an
    // executable that exits at once.
    writeFileSync(config, "{ not json\n");
    process.kill(chain.pid, "SIGUSR2");
    await chain.waitForCount(/upgrade failed: .*this tree serves on/, 1);
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen({ host: "127.0.0.1", port: 0 }, resolve));
    const busyPort = (busy.address() as AddressInfo).port;
    writeFileSync(config, `{ "port": ${busyPort} }\n`);
    process.kill(chain.pid, "SIGUSR2");
    try {
      await chain.waitForCount(/upgrade failed: .*this tree serves on/, 2);
    } finally {
      busy.close();
    }
    assert.match(chain.output(), new RegExp(`:${busyPort}: the address is in use`));
    writeFileSync(config, '{ "port": 0 }\n');
    // The admin API (and the dashboard, which marks it) tells the failure, on the tree that
    // serves on; before it, that tree said whom it took over from.
    const info = await fetch(`http://127.0.0.1:${chain.adminPort}/v1/info`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    }).then((r) => r.json()) as { pid: number; upgrade?: { state: string; reason?: string } };
    assert.equal(info.pid, chain.pid);
    assert.equal(info.upgrade?.state, "failed");
    assert.match(info.upgrade?.reason ?? "", /did not take over: .*this tree serves on/);
    assert.match(chain.output(), new RegExp(`upgrade: took over from pid ${chain.pids.at(-2)} `));
    if (chain.executable !== null) {
      writeFileSync(`${chain.executable}.new`, "#!/bin/sh\nexit 3\n", { mode: 0o755 });
      renameSync(`${chain.executable}.new`, chain.executable);
      process.kill(chain.pid, "SIGUSR2");
      await chain.waitForCount(/upgrade failed: .*this tree serves on/, 3);
    }
    // The tree that refused to go serves on: the load keeps being answered by it.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const figures = await client.stop();
    const numbers = figures.numbers;
    console.log(
      `[${UNDER_TEST}] ${upgrades} upgrades ${extra.join(" ") || "(numbers in memory)"}: ` +
        `handover took ${handovers.join(", ")} ms; ${figures.replies} replies, ` +
        `${figures.errors} errors, ${figures.repeats} repeats, longest gap any client saw ` +
        `${figures.longest_gap_ms} ms (${figures.longest_gap_kind}); long-lived connections ` +
        `closed cleanly by a draining tree: ${figures.clean_closes.long_lived}; /readyz 200 ` +
        `${figures.readyz_ok} times, other ${figures.readyz_bad_count}`,
    );
    assert.deepEqual(figures.first_errors, [], "no connection refused, reset or cut");
    assert.equal(figures.errors, 0);
    assert.deepEqual(figures.first_repeats, [], "no number served twice");
    assert.equal(new Set(numbers).size, numbers.length);
    assert.deepEqual(figures.readyz_bad, [], "/readyz answered 200 throughout");
    assert.ok(figures.replies > 0);
    // Every supervisor but the last has stopped by itself after its drain.
    const old = chain.pids.slice(0, -1);
    const deadline = Date.now() + 10_000;
    while (old.some(isAlive) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual(old.filter(isAlive), [], "every old tree exited after its drain");
    assert.deepEqual(
      readdirSync(scratch(chain.directory)).filter((name) => name.startsWith("tallyho-upgrade-")),
      [],
      "no handover socket is left behind",
    );
    assert.equal(
      [...chain.output().matchAll(/tallyho: stopped; last number handed out/g)].length,
      upgrades,
    );
    assert.ok(isAlive(chain.pid), "the last tree serves on after the failed upgrade");
  } finally {
    await stopChain(chain);
    rmSync(directory, { recursive: true, force: true });
    restore();
  }
}

test(
  `[${UNDER_TEST}] upgrade: ten upgrades in a row under load (numbers in memory) refuse and reset no connection, repeat no number, keep /readyz 200; a failed upgrade leaves the old tree serving`,
  {
    skip: SKIP,
    timeout: 120_000,
  },
  async () => {
    await tenUpgradesUnderLoad([], 10, "signal");
  },
);

test(
  `[${UNDER_TEST}] upgrade: with a state file the new tree takes the lock once the old one lets go, three times under load by POST /v1/upgrade, no repeat`,
  {
    skip: SKIP,
    timeout: 90_000,
  },
  async () => {
    const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-state-"));
    try {
      await tenUpgradesUnderLoad(["--state", join(directory, "numbers.state")], 3, "admin");
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  },
);

test(
  `[${UNDER_TEST}] upgrade: with Redis both trees share the key, three times under load, no repeat`,
  {
    skip: SKIP || skipOffCi(redisUnavailable),
    timeout: 90_000,
  },
  async () => {
    const redis = await startRedis();
    try {
      await tenUpgradesUnderLoad(["--numbers", redis.url("tallyho:upgrade")], 3, "signal");
    } finally {
      await redis.close();
    }
  },
);

test(
  `[${UNDER_TEST}] upgrade: with etcd both trees share the key, three times under load, no repeat`,
  {
    skip: SKIP || skipEtcd,
    timeout: 90_000,
  },
  async () => {
    const etcd = await startEtcd(1);
    try {
      await tenUpgradesUnderLoad(["--numbers", etcd.url("tallyho-upgrade")], 3, "signal");
    } finally {
      await etcd.close();
    }
  },
);
