/**
 * The README's quick start, run as a newcomer runs it: in a fresh clone, the commands taken from
 * the README itself (the fenced blocks under its `<!-- quick-start:... -->` markers), in a shell
 * whose PATH has no node_modules/.bin, and the reply checked.
 *
 * The commands bind the README's fixed ports (9000, admin 9001), so they run in a throwaway
 * network namespace where nothing else listens; that needs root and `ip`, as the SYN-flood tests
 * do (skipped off CI without them, failing on CI).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { blockAfter } from "./_docs.ts";
import {
  createNetns,
  deleteNetns,
  netnsUnavailable,
  requireNetns,
  skipUnlessCi,
} from "./_netns.ts";
import { ROOT, UNDER_TEST } from "./_server.ts";
import { toolMissing } from "./_tools.ts";
import { waitUntil } from "./_wait.ts";

const README = readFileSync(join(ROOT, "README.md"), "utf8");
const unavailable = netnsUnavailable(["git", "nc"]);

/** PATH as a fresh login shell has it: without the node_modules/.bin that npm and our runner add. */
function plainPath(): string {
  return (process.env.PATH ?? "/usr/bin:/bin").split(delimiter)
    .filter((dir) => dir !== "" && !dir.includes("node_modules")).join(delimiter);
}

interface Clone {
  dir: string;
  env: Record<string, string>;
  cleanup(): void;
}

/**
 * Clones the repository's committed HEAD into a temporary directory. Its node_modules is a link
 * to ours instead of the README's `npm ci`: tests must not reach the registry, and `npm ci` from
 * the lock file would install exactly what is there.
 */
function cloneRepository(extraPath: string[] = []): Clone {
  const base = mkdtempSync(join(tmpdir(), "tallyho-quick-start-"));
  const dir = join(base, "tallyho");
  const cloned = spawnSync("git", ["clone", "--quiet", ROOT, dir], {
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(cloned.status, 0, `git clone failed: ${cloned.stderr}`);
  symlinkSync(realpathSync(join(ROOT, "node_modules")), join(dir, "node_modules"));
  // The generated admin token goes here, not into the user's own runtime directory.
  const runtimeDir = join(base, "run");
  mkdirSync(runtimeDir, { mode: 0o700 });
  const env: Record<string, string> = {
    PATH: [...extraPath, plainPath()].join(delimiter),
    HOME: process.env.HOME ?? base,
    XDG_RUNTIME_DIR: runtimeDir,
    NO_COLOR: "1",
    npm_config_update_notifier: "false",
    npm_config_fund: "false",
  };
  return { dir, env, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

/** Runs one README block with bash inside the namespace; returns what it printed and how long. */
function runBlock(ns: string, clone: Clone, script: string) {
  const started = Date.now();
  const result = spawnSync("ip", ["netns", "exec", ns, "bash", "-c", script], {
    cwd: clone.dir,
    env: clone.env,
    encoding: "utf8",
    timeout: 20_000,
  });
  return { ...result, ms: Date.now() - started };
}

/** Starts the README's start block in its own process group, so Ctrl-C reaches all of it. */
function startBlock(ns: string, clone: Clone, script: string) {
  const child = spawn("ip", ["netns", "exec", ns, "bash", "-c", script], {
    cwd: clone.dir,
    env: clone.env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.on("close", (code, signal) => resolve(code ?? signal ?? "unknown"))
  );
  const listening = async (timeoutMs: number) => {
    await waitUntil(
      () => child.exitCode !== null || /listening on 127\.0\.0\.1:9000 /.test(output),
      { what: () => `the start command coming up:\n${output}`, timeoutMs, everyMs: 100 },
    );
    if (child.exitCode !== null) throw new Error(`the start command exited:\n${output}`);
  };
  return { child, exited, listening, output: () => output };
}

/** Ctrl-C for the whole process group, then SIGKILL for whatever is left after 15 s. */
async function stopGroup(child: ChildProcess, exited: Promise<number | string>) {
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // The group is gone.
    }
  };
  signalGroup("SIGINT");
  const stopped = await Promise.race([
    exited.then(() => true),
    new Promise<false>((resolve) => setTimeout(() => resolve(false), 15_000)),
  ]);
  signalGroup("SIGKILL");
  await exited;
  return stopped;
}

async function quickStart(startMarker: string, extraPath: string[] = []) {
  requireNetns(unavailable);
  assert.equal(blockAfter(README, "quick-start:install").trim(), "npm ci");
  const start = blockAfter(README, startMarker);
  const request = blockAfter(README, "quick-start:request");
  const admin = blockAfter(README, "quick-start:admin");
  const clone = cloneRepository(extraPath);
  const ns = createNetns("tallyho-qs");
  const server = startBlock(ns, clone, start);
  try {
    await server.listening(60_000);
    // The first request, exactly as written: it must print the first number and return at once
    // (netcat without -N waits out the 60 s idle timeout).
    const first = runBlock(ns, clone, request);
    assert.equal(first.status, 0, `${request}\n${first.stderr}`);
    assert.equal(first.stdout, "Hello World1\n");
    assert.ok(first.ms < 5_000, `the first request took ${first.ms} ms`);
    const second = runBlock(ns, clone, request);
    assert.equal(second.stdout, "Hello World2\n", "the README says the next one is 2");
    if (toolMissing("curl", "curl") === null) {
      const info = runBlock(ns, clone, admin);
      assert.equal(info.status, 0, `${admin}\n${info.stderr}`);
      const body = JSON.parse(info.stdout) as { state?: string; listen?: { port?: number } };
      assert.equal(body.state, "running", info.stdout);
      assert.equal(body.listen?.port, 9000);
    }
    assert.ok(await stopGroup(server.child, server.exited), "Ctrl-C did not stop the server");
    // Only that it stopped cleanly. With Ctrl-C every process of the group gets SIGINT, and a
    // child that stops within a second of its last reply never reports it, so the stop line can
    // say 0 (a server defect reported separately; not the quick start's concern).
    assert.match(server.output(), /tallyho: stopped; last number handed out: \d+/);
  } finally {
    await stopGroup(server.child, server.exited);
    await deleteNetns(ns);
    clone.cleanup();
  }
}

test(
  `[${UNDER_TEST}] quick start: a fresh clone serves the README's first request with npm start`,
  {
    skip: skipUnlessCi(unavailable),
  },
  async () => {
    await quickStart("quick-start:start");
  },
);

test(`[${UNDER_TEST}] quick start: a Deno user's deno task start serves the same first request`, {
  skip: skipUnlessCi(unavailable),
}, async () => {
  // A Deno user has deno on PATH; here it is the one npm installed, in a directory of its own.
  const bin = mkdtempSync(join(tmpdir(), "tallyho-deno-bin-"));
  symlinkSync(realpathSync(join(ROOT, "node_modules", ".bin", "deno")), join(bin, "deno"));
  try {
    await quickStart("quick-start:deno-start", [bin]);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
