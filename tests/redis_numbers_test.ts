/**
 * End to end: tallyho servers leasing their numbers from one Redis key. Two servers loaded at
 * once never hand out a number twice and each uses only blocks that one INCRBY leased to it;
 * Redis going down and coming back mid-load repeats nothing, refuses visibly and recovers without
 * a restart; `kill -9` of a whole server and a restart repeats nothing; and a wrong password, an
 * unreachable Redis or a key that is not an integer stop the start with one line and exit 1.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { BLOCK_SIZE } from "../server/numbering/number_ledger.ts";
import { inBatches, LineClient, replyNumber } from "./_client.ts";
import { skipRedis, startRedis, type TestRedis, TLS_CERT } from "./_redis.ts";
import { freePort } from "./_ports.ts";
import { burstThenKillTree } from "./_kill_tree.ts";
import {
  isAlive,
  readyzWithin,
  runTallyho,
  startTallyho,
  type TestServer,
  UNDER_TEST,
} from "./_server.ts";
import { sleep, waitUntil } from "./_wait.ts";

/** A run of numbers one INCRBY leased, and the Redis client (ip:port) whose script ran it. */
interface LeasedRun {
  first: number;
  last: number;
  owner: string;
}

/**
 * Replays what Redis ran on `key`, from MONITOR lines in the order Redis ran them: the lease
 * script's `SET` (first-number) and `INCRBY` (the lease) show as `[0 lua]` lines after the
 * `EVAL` line that names the client. Each INCRBY's reply is the mark after it.
 */
function leasedRuns(lines: string[], key: string): { runs: LeasedRun[]; evals: number } {
  const runs: LeasedRun[] = [];
  let mark = 0;
  let owner = "";
  let evals = 0;
  for (const line of lines) {
    const match = /^\S+ \[\d+ ([^\]]+)\] (.*)$/.exec(line);
    if (!match) continue;
    const args = [...match[2]!.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
    if (match[1] !== "lua") {
      if (args[0]?.toUpperCase() === "EVAL") {
        owner = match[1]!;
        evals++;
      }
      continue;
    }
    if (args[1] !== key) continue;
    if (args[0] === "SET") mark = Number(args[2]);
    if (args[0] === "INCRBY") {
      const count = Number(args[2]);
      mark += count;
      runs.push({ first: mark - count + 1, last: mark, owner });
    }
  }
  return { runs, evals };
}

function runOf(runs: LeasedRun[], n: number): LeasedRun | undefined {
  let low = 0;
  let high = runs.length - 1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    const run = runs[mid]!;
    if (n < run.first) high = mid - 1;
    else if (n > run.last) low = mid + 1;
    else return run;
  }
  return undefined;
}

/** Waits until MONITOR has shown everything Redis ran before now. */
async function monitorCaughtUp(redis: TestRedis, lines: string[]): Promise<void> {
  const marker = `caught-up-${Date.now()}`;
  await redis.command("ECHO", marker);
  // At most 10 s: the caller's checks then say what MONITOR missed.
  await waitUntil(() => lines.some((line) => line.includes(marker)), { timeoutMs: 10_000 })
    .catch(() => {});
}

/**
 * One pipelined client: `lines` messages in one write, then wait for as many replies or a close.
 *
 * @returns The numbers it got, and whether the server closed it before answering everything.
 */
async function pipelined(
  port: number,
  lines: number,
): Promise<{ numbers: number[]; served: boolean; refused: boolean }> {
  const client = await LineClient.connect(port);
  try {
    client.send("n\n".repeat(lines));
    const replies = await client.lines(lines, 15_000);
    const numbers = replies.map((line) => replyNumber(line));
    for (let i = 1; i < numbers.length; i++) {
      assert.ok(numbers[i]! > numbers[i - 1]!, "replies on one connection come in order");
    }
    const served = numbers.length === lines;
    return { numbers, served, refused: !served && client.closed };
  } finally {
    client.close();
  }
}

function messageServerArgs(redis: TestRedis, key: string): string[] {
  return [
    "--processes",
    "2",
    "--threads",
    "1",
    "--framing",
    "line",
    "--number-by",
    "message",
    "--numbers",
    redis.url(key),
  ];
}

test(
  `[${UNDER_TEST}] two servers x 2 processes on one Redis key, loaded at once: no number twice, each block from one INCRBY to that server`,
  { skip: skipRedis },
  async () => {
    const redis = await startRedis();
    const watch = await redis.monitor();
    const servers: TestServer[] = [];
    try {
      for (let i = 0; i < 2; i++) servers.push(await startTallyho(messageServerArgs(redis, "n")));
      const perServer = await Promise.all(servers.map(async (server) => {
        const perClient = await inBatches(Array.from({ length: 32 }), 16, async () => {
          const client = await LineClient.connect(server.port);
          try {
            // Pipelined: four writes of 1,000 lines without waiting for a reply.
            for (let i = 0; i < 4; i++) client.send("x\n".repeat(1000));
            const lines = await client.lines(4000, 30_000);
            assert.equal(lines.length, 4000, "every line got its own reply");
            return lines.map((line) => replyNumber(line));
          } finally {
            client.close();
          }
        });
        return perClient.flat();
      }));
      for (const server of servers) assert.equal(await server.stop(), 0, server.output());
      await monitorCaughtUp(redis, watch.lines);

      const all = perServer.flat();
      assert.equal(all.length, 2 * 32 * 4000);
      assert.equal(new Set(all).size, all.length, "a number was handed out twice");

      const { runs, evals } = leasedRuns(watch.lines, "n");
      assert.ok(runs.length > 0, "Redis ran the lease script");
      assert.equal(evals, runs.length, "one script run, one INCRBY, per lease");
      const mark = Number(await redis.command("GET", "n"));
      assert.equal(runs.at(-1)!.last, mark, "the replayed leases end at the key's value");
      let leased = 0;
      for (const run of runs) {
        const count = run.last - run.first + 1;
        assert.equal(count % BLOCK_SIZE, 0, `a lease of ${count} is not whole blocks`);
        assert.equal(
          (run.first - 1) % BLOCK_SIZE,
          0,
          `a run starts off a block edge: ${run.first}`,
        );
        leased += count;
      }
      // One round trip per lease of whole blocks, never one per client or message.
      assert.ok(runs.length <= leased / BLOCK_SIZE);
      assert.ok(runs.length < all.length / BLOCK_SIZE + 8, `${runs.length} leases`);

      const owners = perServer.map((numbers, s) => {
        const seen = new Set<string>();
        for (const n of numbers) {
          const run = runOf(runs, n);
          assert.ok(run, `server ${s} handed out ${n}, which no INCRBY leased`);
          // The block this number lies in (4096 aligned from first-number 1) is inside that run.
          const blockStart = Math.floor((n - 1) / BLOCK_SIZE) * BLOCK_SIZE + 1;
          assert.ok(blockStart >= run.first && blockStart + BLOCK_SIZE - 1 <= run.last);
          seen.add(run.owner);
        }
        assert.equal(seen.size, 1, `server ${s} used runs of ${[...seen]}: one connection each`);
        return [...seen][0];
      });
      assert.notEqual(owners[0], owners[1], "the two servers leased over different connections");
    } finally {
      watch.stop();
      for (const server of servers) await server.stop("SIGKILL");
      await redis.close();
    }
  },
);

test(
  `[${UNDER_TEST}] Redis killed mid-load and started again: refusals counted and logged, service resumes without a restart, no number twice`,
  { skip: skipRedis },
  async () => {
    // Durable, so the kill loses no lease (appendfsync always): what docs/numbering.md tells operators.
    const redis = await startRedis({ durable: true });
    const server = await startTallyho(messageServerArgs(redis, "n"));
    const seen: number[] = [];
    let refused = 0;
    const round = async () => {
      const results = await Promise.all(
        Array.from({ length: 8 }, () => pipelined(server.port, 2000)),
      );
      let served = 0;
      for (const result of results) {
        seen.push(...result.numbers);
        if (result.refused) refused++;
        if (result.served) served++;
      }
      return served;
    };
    try {
      const children = [...server.childPids().values()];
      for (let i = 0; i < 3; i++) assert.equal(await round(), 8, "all served with Redis up");

      await redis.kill();
      // Processes serve on from the blocks they hold; once those run out, clients are refused.
      const downUntil = Date.now() + 60_000;
      for (let i = 0; i < 200 && refused === 0 && Date.now() < downUntil; i++) await round();
      assert.ok(refused > 0, "clients were refused once the leased numbers ran out");
      await server.waitFor(
        /cannot lease \d+ numbers to process \d+: .*serving from leased numbers/,
      );
      // The admin API says so: /readyz 503 once a process is out of numbers (it reports every
      // second), /v1/info and /metrics show the source down and the failed leases.
      assert.equal(await readyzWithin(server, 503, 5000), 503, "/readyz while out of numbers");
      const down = await (await server.admin("/v1/info")).json();
      assert.equal(down.numbersAvailable, false);
      assert.equal(down.numbers.connected, false);
      assert.match(down.numbers.description, /^redis redis:\/\//);
      assert.ok(down.numbers.leaseErrors > 0);
      const metrics = await (await server.admin("/metrics")).text();
      assert.match(metrics, /^tallyho_numbers_source_connected 0$/m);
      assert.match(metrics, /^tallyho_number_lease_errors_total [1-9]\d*$/m);
      assert.match(metrics, /^tallyho_numbers_remaining\{process="0"\} \d+$/m);

      await redis.restart();
      const upUntil = Date.now() + 60_000;
      let fullRound = false;
      for (let i = 0; i < 200 && !fullRound && Date.now() < upUntil; i++) {
        fullRound = (await round()) === 8;
        // The processes retry with backoff (up to 5 s): give them time rather than rounds.
        if (!fullRound) await sleep(100);
      }
      assert.ok(fullRound, "every client was served again after Redis came back");
      assert.equal(await readyzWithin(server, 200, 5000), 200, "/readyz once Redis is back");
      await server.waitFor(/leasing numbers again from redis redis:\/\/\S+ after \d+ failed lease/);
      assert.deepEqual([...server.childPids().values()], children, "no process was restarted");
      assert.equal(server.output().match(/listening \(pid/g)?.length, 2, "no process restarted");
      assert.ok(isAlive(server.pid), "the supervisor served through");

      assert.equal(await server.stop(), 0, server.output());
      const closed = /closed for want of leased numbers: (\d+)/.exec(server.output());
      assert.ok(closed, `no refusal figure in the shutdown line:\n${server.output()}`);
      assert.equal(Number(closed[1]), refused, "each refused client was counted once");

      assert.equal(new Set(seen).size, seen.length, "a number was handed out twice");
      const mark = Number(await redis.command("GET", "n"));
      assert.ok(
        seen.every((n) => n <= mark),
        "the key, after the kill, is at or above every number handed out",
      );
    } finally {
      await server.stop("SIGKILL");
      await redis.close();
    }
  },
);

test(
  `[${UNDER_TEST}] a process killed while Redis is down comes back and refuses until Redis returns; the server never stops`,
  { skip: skipRedis },
  async () => {
    const redis = await startRedis({ durable: true });
    const server = await startTallyho(messageServerArgs(redis, "n"));
    const seen: number[] = [];
    const round = async () => {
      const results = await Promise.all(
        Array.from({ length: 4 }, () => pipelined(server.port, 500)),
      );
      for (const result of results) seen.push(...result.numbers);
      return results.filter((result) => result.served).length;
    };
    try {
      assert.equal(await round(), 4);
      const victim = server.childPids().get(1)!;
      await redis.kill();
      process.kill(victim, "SIGKILL");
      await server.waitFor(new RegExp(`process 1 \\(pid ${victim}\\) died`));
      // Its replacement cannot lease a first block, yet it listens rather than dying in a loop
      // that would stop the whole server, process 0 and its numbers included.
      await server.waitFor(/process 1 listening[^]*process 1 listening/, 20_000);
      await server.waitFor(/cannot lease numbers yet: .*refusing clients until a lease succeeds/);
      for (let i = 0; i < 5; i++) await round();
      assert.ok(isAlive(server.pid), "the supervisor is still running");
      assert.doesNotMatch(server.output(), /stopping:/);

      await redis.restart();
      let fullRound = false;
      const upUntil = Date.now() + 60_000;
      for (let i = 0; i < 200 && !fullRound && Date.now() < upUntil; i++) {
        fullRound = (await round()) === 4;
        // The processes retry with backoff (up to 5 s): give them time rather than rounds.
        if (!fullRound) await sleep(100);
      }
      assert.ok(fullRound, "every client was served again after Redis came back");
      assert.equal(await readyzWithin(server, 200, 5000), 200, "/readyz once Redis is back");
      assert.equal(await server.stop(), 0, server.output());
      assert.equal(new Set(seen).size, seen.length, "a number was handed out twice");
    } finally {
      await server.stop("SIGKILL");
      await redis.close();
    }
  },
);

test(
  `[${UNDER_TEST}] kill -9 of a whole Redis-numbered server and a restart, 3 rounds: no number twice, each round above the last`,
  { skip: skipRedis },
  async () => {
    const redis = await startRedis({ password: "pw-from-env" });
    const saved = process.env.TALLYHO_REDIS_PASSWORD;
    process.env.TALLYHO_REDIS_PASSWORD = "pw-from-env"; // the children of this test inherit it
    const rounds: number[][] = [];
    const marks: number[] = [];
    try {
      for (let r = 0; r < 3; r++) {
        const server = await startTallyho(messageServerArgs(redis, "n"));
        const numbers = await burstThenKillTree(server, 6, 200, 500);
        assert.ok(numbers.length > 0, `round ${r} served nothing`);
        rounds.push(numbers);
        marks.push(Number(await redis.command("GET", "n")));
      }
      const all = rounds.flat();
      assert.equal(new Set(all).size, all.length, "a number was repeated across restarts");
      for (let r = 1; r < rounds.length; r++) {
        const earlierMax = rounds.slice(0, r).flat().reduce((a, b) => Math.max(a, b), 0);
        const roundMin = rounds[r]!.reduce((a, b) => Math.min(a, b), Infinity);
        assert.ok(
          roundMin > earlierMax,
          `round ${r} starts at ${roundMin}, not above ${earlierMax}`,
        );
        // The killed server's unused numbers are abandoned: the next one starts above its mark.
        assert.ok(roundMin > marks[r - 1]!, `round ${r} reused numbers below ${marks[r - 1]}`);
      }
    } finally {
      if (saved === undefined) delete process.env.TALLYHO_REDIS_PASSWORD;
      else process.env.TALLYHO_REDIS_PASSWORD = saved;
      await redis.close();
    }
  },
);

test(
  `[${UNDER_TEST}] rediss:// with --numbers-ca-file leases over TLS; without the CA the start stops with one line`,
  { skip: skipRedis },
  async () => {
    const redis = await startRedis({ tls: true });
    try {
      await expectOneLineExit1(
        ["--numbers", redis.url("k")],
        /^tallyho: Cannot reach Redis at rediss:\/\/127\.0\.0\.1:\d+\/0\?key=k: self.signed certificate/,
      );
      const server = await startTallyho([
        "--threads",
        "1",
        "--numbers",
        redis.url("k"),
        "--numbers-ca-file",
        TLS_CERT,
      ]);
      try {
        const client = await LineClient.connect(server.port);
        assert.equal(replyNumber(await client.request("hi\n")), 1);
        client.close();
      } finally {
        assert.equal(await server.stop(), 0);
      }
      const mark = Number(await redis.command("GET", "k"));
      assert.ok(mark >= BLOCK_SIZE && mark % BLOCK_SIZE === 0, `leased whole blocks: ${mark}`);
    } finally {
      await redis.close();
    }
  },
);

async function expectOneLineExit1(args: string[], expected: RegExp): Promise<void> {
  const { code, stderr, stdout } = await runTallyho(["--port", "0", "--threads", "1", ...args]);
  assert.equal(code, 1, `exit code; stderr: ${stderr}`);
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line:\n${stderr}`);
  assert.match(lines[0]!, expected);
  assert.doesNotMatch(stdout, /listening/);
}

test(`[${UNDER_TEST}] cli: a wrong Redis password stops the start with one line and exit 1`, {
  skip: skipRedis,
}, async () => {
  const redis = await startRedis({ password: "right" });
  const dir = mkdtempSync(join(tmpdir(), "tallyho-redis-pw-"));
  try {
    const file = join(dir, "pw");
    writeFileSync(file, "wrong-one\n");
    await expectOneLineExit1(
      ["--numbers", redis.url("k"), "--numbers-password-file", file],
      /^tallyho: Redis at redis:\/\/127\.0\.0\.1:\d+\/0\?key=k refused the password \(WRONGPASS/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await redis.close();
  }
});

test(`[${UNDER_TEST}] cli: an unreachable Redis stops the start with one line and exit 1`, async () => {
  const port = await freePort();
  await expectOneLineExit1(
    ["--numbers", `redis://127.0.0.1:${port}/0?key=k`],
    new RegExp(
      `^tallyho: Cannot reach Redis at redis://127\\.0\\.0\\.1:${port}/0\\?key=k: .*ECONNREFUSED`,
    ),
  );
});

test(
  `[${UNDER_TEST}] cli: a Redis key that is not an integer stops the start with one line and exit 1`,
  { skip: skipRedis },
  async () => {
    const redis = await startRedis();
    try {
      await redis.command("SET", "k", "twelve");
      await expectOneLineExit1(
        ["--numbers", redis.url("k")],
        /^tallyho: Redis key "k" at redis:\/\/127\.0\.0\.1:\d+\/0\?key=k holds "twelve", not an integer/,
      );
      assert.equal(await redis.command("GET", "k"), "twelve", "the key is left as it was");
    } finally {
      await redis.close();
    }
  },
);

test(
  `[${UNDER_TEST}] redis url: a URL without ?key= (the path-as-key form) stops the start with one line and exit 2; redis://HOST:PORT/DB?key=KEY serves`,
  { skip: skipRedis },
  async () => {
    const redis = await startRedis();
    let current: TestServer | null = null;
    try {
      const old = await runTallyho(["--numbers", `redis://127.0.0.1:${redis.port}/n`]);
      assert.equal(old.code, 2, old.stderr);
      assert.match(
        old.stderr,
        /^tallyho: 'numbers' must be redis:\/\/HOST:PORT\/DB\?key=KEY .*names no key \(\?key= names the key/,
      );
      current = await startTallyho(["--numbers", `redis://127.0.0.1:${redis.port}/0?key=n`]);
      const client = await LineClient.connect(current.port);
      client.send("x\n");
      assert.ok(replyNumber((await client.lines(1, 5000))[0]!) >= 1, "a numbered reply");
      client.close();
      assert.equal(await current.stop(), 0, current.output());
    } finally {
      await current?.stop("SIGKILL");
      await redis.close();
    }
  },
);
