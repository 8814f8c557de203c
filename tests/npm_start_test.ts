/**
 * `kill <pid of npm start>` stops the server it started, with its normal drain (issue 26, item
 * 7). npm hands SIGTERM to its child, the `sh -c` running the script; Debian's /bin/sh (dash)
 * runs a one-command script as a child of its own and, signalled, dies without passing the
 * signal on, so `bun mod.ts serve` was left orphaned and listening. The scripts `exec` the
 * runtime, which then is npm's child and gets the signal itself. `deno task start` is checked
 * too (its shell hands the signal on). The server does not die with its parent in general:
 * operators run it under nohup, setsid and systemd.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import process from "node:process";
import { isAlive, ROOT } from "./_server.ts";
import { waitUntil } from "./_wait.ts";

/** Every process below `root` now, from /proc (a process's parent is field 4 of its stat). */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // Gone meanwhile.
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** The command line of a process, for a failure message. */
function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return "(gone)";
  }
}

/** Starts a script runner, waits until the server it runs serves, and kills the runner alone. */
async function killRunner(command: string, args: string[]): Promise<void> {
  const env = { ...process.env, PATH: `${ROOT}/node_modules/.bin:${process.env.PATH}` };
  const runner: ChildProcess = spawn(command, args, {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  runner.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  runner.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  let tree: number[] = [];
  try {
    await waitUntil(() => /listening on 127\.0\.0\.1:\d+/.test(output), {
      what: () => `${command} ${args.join(" ")} serving:\n${output}`,
      timeoutMs: 60_000,
    });
    tree = descendants(runner.pid!);
    assert.ok(
      tree.some((pid) => /mod\.ts serve/.test(commandOf(pid))),
      `the server among ${tree.map(commandOf).join("; ")}`,
    );
    runner.kill("SIGTERM");
    // The server drains and exits, and with it every process it started.
    await waitUntil(() => tree.every((pid) => !isAlive(pid)), {
      what: () =>
        `every process of the tree gone after SIGTERM to ${command}; left: ${
          tree.filter(isAlive).map((pid) => `${pid} ${commandOf(pid)}`).join("; ")
        }\n${output}`,
      timeoutMs: 30_000,
    });
    await waitUntil(() => /stopped; last number handed out/.test(output), {
      what: () => `the server's stop line:\n${output}`,
      timeoutMs: 5_000,
    });
    assert.match(output, /SIGTERM: draining/);
  } finally {
    runner.kill("SIGKILL");
    for (const pid of tree) {
      try {
        if (isAlive(pid)) process.kill(pid, "SIGKILL");
      } catch {
        // Gone.
      }
    }
  }
}

const SERVE_ARGS = ["--port", "0", "--admin", "127.0.0.1:0"];

// npm is not a system tool here: it is how the repository is installed (README, CONTRIBUTING).
test(
  "kill of the npm start process stops bun mod.ts serve with its drain, nothing left running",
  () => killRunner("npm", ["start", "--", ...SERVE_ARGS]),
);

test(
  "kill of the npm run start:deno process stops deno mod.ts serve with its drain, nothing left running",
  () => killRunner("npm", ["run", "start:deno", "--", ...SERVE_ARGS]),
);

test("kill of the deno task start process stops deno mod.ts serve with its drain, nothing left running", () =>
  killRunner(`${ROOT}/node_modules/.bin/deno`, ["task", "start", ...SERVE_ARGS]));
