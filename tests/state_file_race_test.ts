/**
 * The state file's lock under races: at most one holder, ever, when processes start at the same
 * moment against a lock file left behind by a dead holder.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { LineClient, replyNumber } from "./_client.ts";
import { ROOT, startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";

const IS_BUN = "Bun" in globalThis;
const TRIALS = 1000;
const TRIAL_BUDGET_MS = 40_000;

/** A racer process (tests/_lock_racer.ts) and a way to ask it one thing at a time. */
class Racer {
  readonly #child: ChildProcess;
  #buffer = "";
  #waiting: Array<(line: string) => void> = [];

  constructor() {
    const args = IS_BUN ? [] : ["run", "-A"];
    this.#child = spawn(process.execPath, [...args, join(ROOT, "tests/_lock_racer.ts")], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    this.#child.stdout!.on("data", (chunk: Buffer) => {
      this.#buffer += chunk.toString();
      let end: number;
      while ((end = this.#buffer.indexOf("\n")) >= 0) {
        const line = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 1);
        this.#waiting.shift()?.(line);
      }
    });
  }

  /** The next line the racer writes. */
  next(): Promise<string> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  send(line: string): Promise<string> {
    const reply = this.next();
    this.#child.stdin!.write(`${line}\n`);
    return reply;
  }

  stop(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.#child.on("exit", () => resolve()));
    this.#child.stdin!.end();
    setTimeout(() => this.#child.kill("SIGKILL"), 5000).unref?.();
    return exited;
  }
}

test(`[${UNDER_TEST}] state file lock: two processes racing for a dead holder's lock, ${TRIALS} times, never both hold it`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-lock-race-"));
  const racers = [new Racer(), new Racer()];
  try {
    await Promise.all(racers.map((r) => r.next())); // "ready"
    const outcomes = { one: 0, both: 0, none: 0 };
    const none: string[] = [];
    const started = Date.now();
    let trial = 0;
    for (; trial < TRIALS && Date.now() - started < TRIAL_BUDGET_MS; trial++) {
      const path = join(dir, `s${trial}`);
      writeFileSync(`${path}.lock`, "4000000\n"); // a dead holder's pid
      const replies = await Promise.all(racers.map((r) => r.send(`lock ${path}`)));
      const holders = racers.filter((_, i) => replies[i] === "held");
      if (holders.length === 1) outcomes.one++;
      else if (holders.length === 2) outcomes.both++;
      else {
        outcomes.none++;
        none.push(replies.join(" | "));
      }
      await Promise.all(holders.map((r) => r.send("release")));
    }
    console.log(
      `lock race: ${trial} trials in ${Date.now() - started} ms: ${JSON.stringify(outcomes)}`,
    );
    assert.ok(trial >= 100, `at least 100 trials ran (${trial})`);
    assert.equal(outcomes.both, 0, `trials where both processes held the lock: ${outcomes.both}`);
    assert.equal(outcomes.none, 0, `trials where neither held it: ${none.slice(0, 3)}`);
  } finally {
    await Promise.all(racers.map((r) => r.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`[${UNDER_TEST}] cli: two servers started at once on one state file with a dead holder's lock: exactly one serves`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-lock-race-"));
  try {
    for (let trial = 0; trial < 10; trial++) {
      const path = join(dir, `numbers${trial}.state`);
      writeFileSync(`${path}.lock`, "4000000\n");
      const args = ["--threads", "1", "--admin", "off", "--state", path];
      const results = await Promise.allSettled([startTallyho(args), startTallyho(args)]);
      const serving = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
      try {
        assert.equal(serving.length, 1, `trial ${trial}: ${serving.length} servers serve`);
        const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
        // A file just created holds no pid for an instant; the refusal says so.
        assert.match(
          String(refused.reason),
          /is in use by another tallyho \(pid (\d+|not yet written), lock /,
        );
        const client = await LineClient.connect(serving[0]!.port);
        assert.equal(replyNumber(await client.request("hi")), 1);
        client.close();
      } finally {
        await Promise.all(serving.map((s: TestServer) => s.stop()));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`[${UNDER_TEST}] state file lock: two processes taking and releasing it 2000 times each never hold it together`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-lock-race-"));
  const racers = [new Racer(), new Racer()];
  try {
    await Promise.all(racers.map((r) => r.next())); // "ready"
    const path = join(dir, "s");
    const started = Date.now();
    const replies = await Promise.all(racers.map((r) => r.send(`churn ${path} 2000`)));
    console.log(`lock churn: ${Date.now() - started} ms: ${replies.join(", ")}`);
    let taken = 0;
    for (const reply of replies) {
      const [word, got, doubles] = reply.split(" ");
      assert.equal(word, "churned", reply);
      assert.equal(Number(doubles), 0, `a second holder found the first's marker: ${reply}`);
      taken += Number(got);
    }
    // Most tries find the other holding it; enough takes must overlap the other's tries.
    assert.ok(taken >= 100, `the lock was taken ${taken} times in 4000 tries`);
  } finally {
    await Promise.all(racers.map((r) => r.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
});
