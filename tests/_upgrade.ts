/**
 * Test fixture for the upgrade tests: a server tree started by the test (and every tree that
 * takes over from it, all writing into the same output), upgrades by signal or admin API, and the
 * independent recorder (tests/fixtures/upgrade_recorder.py, Python's standard library only) that
 * loads the port and records every number, error and `/readyz` answer with its time.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { ADMIN_TOKEN, isAlive, tallyhoCommand } from "./_server.ts";
import { BINARY } from "./_target.ts";
import { sleep, waitUntil } from "./_wait.ts";
import { LineClient, replyNumber } from "./_client.ts";

const RECORDER = fileURLToPath(new URL("fixtures/upgrade_recorder.py", import.meta.url));
const MIGRATE = "/proc/sys/net/ipv4/tcp_migrate_req";

/** Why net.ipv4.tcp_migrate_req=1 cannot be had here, or null (then the tests set it). */
export function migrateUnavailable(): string | null {
  try {
    if (readFileSync(MIGRATE, "utf8").trim() === "1") return null;
    if (process.getuid?.() !== 0) return "needs net.ipv4.tcp_migrate_req=1 (or root to set it)";
    return null;
  } catch {
    return "this kernel has no net.ipv4.tcp_migrate_req (Linux 5.14 or later)";
  }
}

/** Sets tcp_migrate_req to 1 and returns how to put the old value back. */
export function enableMigration(): () => void {
  const before = readFileSync(MIGRATE, "utf8").trim();
  if (before !== "1") writeFileSync(MIGRATE, "1");
  return () => {
    if (before !== "1") writeFileSync(MIGRATE, before);
  };
}

/** Options for {@linkcode treeArgs}. */
export interface TreeArgs {
  /** `--admin`: `127.0.0.1:0` or `off`. @default {"off"} */
  admin?: string;
  /** @default {1} */
  processes?: number;
  /** @default {"1s"} */
  drainTimeout?: string;
  /** Whether to give `--port 0` (not, to leave the port to a config file). @default {true} */
  port?: boolean;
}

/**
 * `serve`'s arguments for the upgrade tests: 127.0.0.1 on a free port, one thread per process,
 * line framing numbered by message, a short drain; `extra` after them.
 */
export function treeArgs(extra: string[] = [], options: TreeArgs = {}): string[] {
  return [
    "--host",
    "127.0.0.1",
    ...(options.port === false ? [] : ["--port", "0"]),
    "--admin",
    options.admin ?? "off",
    "--processes",
    String(options.processes ?? 1),
    "--threads",
    "1",
    "--framing",
    "line",
    "--number-by",
    "message",
    "--drain-timeout",
    options.drainTimeout ?? "1s",
    ...extra,
  ];
}

/**
 * A command to start a tree with (`TreeOptions.wrap`) in a private mount namespace where
 * `directory` is mounted by `mount` (its arguments before the target): a bind mount of itself,
 * to remount read-only there without touching anyone else's view (chmod does not stop root), or
 * a small tmpfs. The trees an upgrade starts are its children, in the same namespace.
 */
export function privateMount(directory: string, mount: string[]): string[] {
  return [
    "unshare",
    "-m",
    "--propagation",
    "private",
    "sh",
    "-c",
    `mount ${mount.join(" ")} "$0" && exec "$@"`,
    directory,
  ];
}

/** Runs `command` in the mount namespace of `pid` (as root). */
export function inNamespace(
  pid: number,
  command: string[],
): { status: number | null; stderr: string } {
  return spawnSync("nsenter", ["-t", String(pid), "-m", "--", ...command], { encoding: "utf8" });
}

/**
 * Remounts a bind mount made by {@linkcode privateMount} read-only or writable in the namespace of
 * `pid`. The kernel refuses a read-only remount (EBUSY) while a file in it is open for writing (a
 * lease writing the state file): tried again for up to 5 s.
 */
export async function remount(pid: number, directory: string, mode: "ro" | "rw"): Promise<void> {
  for (let i = 0;; i++) {
    const done = inNamespace(pid, ["mount", "-o", `remount,bind,${mode}`, directory]);
    if (done.status === 0) return;
    if (i >= 50 || !/busy/.test(done.stderr)) throw new Error(done.stderr);
    await sleep(100);
  }
}

/** A chain of server trees: the first supervisor the test started and every one after it. */
export interface Tree {
  readonly port: number;
  /** The admin API's port, or 0 with `--admin off`. */
  readonly adminPort: number;
  /** The current supervisor's pid. */
  pid: number;
  /** Every supervisor pid seen, oldest first. */
  readonly pids: number[];
  /** Everything every tree printed so far. */
  output(): string;
  /** Resolves with the `count`-th match of `pattern` in the output. */
  waitFor(pattern: RegExp, count?: number, timeoutMs?: number): Promise<RegExpExecArray>;
  /** The first supervisor's process. */
  readonly first: ChildProcess;
  /** The test's directory (removed by {@linkcode stopTree}); the trees' TMPDIR is `tmp` in it. */
  readonly directory: string;
  /** The executable the chain runs (a copy of the compiled binary), or null from source. */
  readonly executable: string | null;
  /** Handovers seen so far. */
  handovers: number;
}

/** Options for {@linkcode startTree}. */
export interface TreeOptions {
  /**
   * A command that execs the server (such as `unshare -m ...`), so the pid stays the server's.
   * @default {[]}
   */
  wrap?: string[];
  /**
   * Variables added to the server's environment.
   * @default {{}}
   */
  env?: Record<string, string>;
  /**
   * Where the compiled binary's copy goes; `tallyho` in the test's directory by default.
   */
  executable?: (directory: string) => string;
  /**
   * The path to start the binary's copy through (a symlink the test makes to it); the copy's
   * own path by default.
   */
  startAs?: (directory: string, executable: string) => string;
}

/** The trees' TMPDIR inside the test's directory. */
export function scratch(directory: string): string {
  const path = join(directory, "tmp");
  mkdirSync(path, { recursive: true });
  return path;
}

/**
 * Starts a tree: `serve` with `args` on the runtime under test, or a copy of the compiled binary
 * (so that the test can put a new binary, or a broken one, at its path).
 *
 * @param args `serve`'s arguments; give `--admin 127.0.0.1:0` or `--admin off`.
 * @param options How to start it.
 * @returns The tree once it listens (and serves its admin API).
 */
export async function startTree(args: string[], options: TreeOptions = {}): Promise<Tree> {
  const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-test-"));
  const command = tallyhoCommand(["serve", ...args]);
  let executable: string | null = null;
  if (BINARY !== null) {
    executable = options.executable?.(directory) ?? join(directory, "tallyho");
    copyFileSync(BINARY, executable);
    chmodSync(executable, 0o755);
  }
  const program = executable === null
    ? command.cmd
    : options.startAs?.(directory, executable) ?? executable;
  // Every tree writes into one file: the trees an upgrade starts inherit it, and what they write
  // after the first one exits is kept (a pipe's reader, Bun's, stopped at the first one's exit).
  const log = join(directory, "trees.log");
  writeFileSync(log, "");
  const child = spawn(
    "/bin/sh",
    ["-c", 'exec "$@" >>"$0" 2>&1', log, ...(options.wrap ?? []), program, ...command.argv],
    {
      cwd: executable === null ? command.cwd : directory,
      stdio: ["ignore", "ignore", "ignore"],
      // A temporary directory of its own, to check what the trees leave behind in it.
      env: {
        ...process.env,
        TALLYHO_ADMIN_TOKEN: ADMIN_TOKEN,
        TMPDIR: scratch(directory),
        ...options.env,
      },
    },
  );
  let output = "";
  const read = () => (output = readFileSync(log, "utf8"));
  /** Whether any supervisor of the chain still runs: the first, or one an upgrade started. */
  const running = () =>
    child.exitCode === null ||
    [...output.matchAll(/started a new supervisor \(pid (\d+)\)/g)].some((m) => isAlive(+m[1]!));
  const waitFor = async (pattern: RegExp, count = 1, timeoutMs = 30_000) => {
    const found = await waitUntil(() => {
      const matches = [...read().matchAll(new RegExp(pattern.source, "g"))];
      if (matches.length >= count) return { match: matches[count - 1]! as RegExpExecArray };
      return running() ? null : { match: null };
    }, { timeoutMs, what: () => `${pattern} ${count} times; output:\n${output}` });
    if (found.match === null) throw new Error(`every tree exited; output:\n${output}`);
    return found.match;
  };
  const tree: Tree = {
    port: 0,
    adminPort: 0,
    pid: child.pid!,
    pids: [child.pid!],
    output: read,
    waitFor,
    first: child,
    directory,
    executable,
    handovers: 0,
  };
  const listening = await waitFor(/listening on \S+:(\d+)/, 1, 30_000);
  const adminOff = args.join(" ").includes("--admin off");
  const admin = adminOff ? null : await waitFor(/admin API on http:\/\/127\.0\.0\.1:(\d+)\//);
  Object.assign(tree, { port: Number(listening[1]), adminPort: Number(admin?.[1] ?? 0) });
  return tree;
}

/** Stops every supervisor the tree had, waits until all are gone, and removes its directory. */
export async function stopTree(tree: Tree): Promise<void> {
  await stopPids(tree.pids);
  rmSync(tree.directory, { recursive: true, force: true });
}

/** SIGTERM to each pid, then SIGKILL to any still there after 15 s. */
export async function stopPids(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // Gone already.
    }
  }
  await waitUntil(() => !pids.some(isAlive), { timeoutMs: 15_000 }).catch(() => {});
  for (const pid of pids.filter(isAlive)) process.kill(pid, "SIGKILL");
}

/**
 * Puts a fresh copy of the binary at the tree's executable path, as a deploy would (nothing to
 * do from source: the runtime reads the script again).
 */
export function deployBinary(tree: Tree): void {
  if (tree.executable === null) return;
  copyFileSync(BINARY!, `${tree.executable}.new`);
  chmodSync(`${tree.executable}.new`, 0o755);
  renameSync(`${tree.executable}.new`, tree.executable);
}

/** The pattern of the old tree's line once it has handed over: pid and milliseconds. */
export const HANDED_OVER = /upgrade: handed over to pid (\d+)\b[^:\n]*: handover took (\d+) ms/;

/**
 * Upgrades the tree once, by SIGUSR2 or `POST /v1/upgrade`, and waits for the handover; the tree
 * then names the new supervisor.
 *
 * @returns How long the handover took, as the old tree logged it.
 */
export async function upgrade(tree: Tree, via: "signal" | "admin" = "signal"): Promise<number> {
  deployBinary(tree);
  if (via === "signal") process.kill(tree.pid, "SIGUSR2");
  else {
    // The admin port passes between trees without SO_REUSEPORT: just after a handover it may be
    // closed for a moment.
    const post = () =>
      fetch(`http://127.0.0.1:${tree.adminPort}/v1/upgrade`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      }).catch(() => null);
    let response = await post();
    for (const deadline = Date.now() + 5000; response === null && Date.now() < deadline;) {
      await sleep(20);
      response = await post();
    }
    if (response === null) throw new Error("the admin port stayed closed");
    const body = await response.json() as { state: string; fromPid: number };
    assert.equal(response.status, 202, JSON.stringify(body));
    assert.equal(body.state, "upgrading");
    assert.equal(body.fromPid, tree.pid);
  }
  const handed = await tree.waitFor(HANDED_OVER, tree.handovers + 1);
  tree.handovers++;
  tree.pid = Number(handed[1]);
  tree.pids.push(tree.pid);
  return Number(handed[2]);
}

/** What {@linkcode startRecorder} recorded. */
export interface Recording {
  seconds: number;
  replies: number;
  repeats: number;
  first_repeats: number[];
  error_kinds: Record<"refused" | "reset" | "unanswered" | "timeout" | "other", number>;
  /** `[kind, client, what, seconds since the start]`. */
  errors: [string, string, string, number][];
  clean_closes: { long_lived: number; unanswered_lines: number };
  longest_gap_ms: number;
  longest_gap_kind: string;
  /** `[seconds since the start, status]`: 200, 503, or an error kind. */
  readyz: [number, number | string][];
  /** Replies received in each second since the start. */
  per_second: number[];
  /** Every number received. */
  numbers: number[];
}

/** Options for {@linkcode startRecorder}. */
export interface RecorderOptions {
  /** @default {4} */
  perRequest?: number;
  /** @default {4} */
  longLived?: number;
  /** Lines each long-lived connection sends at once. @default {1} */
  batch?: number;
  /** @default {10} */
  paceMs?: number;
  /** Whether to poll `/readyz` (the tree must serve its admin API). @default {true} */
  readyz?: boolean;
  /** The longest it may run. @default {120} */
  maxSeconds?: number;
}

/** A recorder under way. */
export interface Recorder {
  /** Seconds since it started (as the recorder counts them, to within a few ms). */
  now(): number;
  /** Stops it and resolves with what it recorded. */
  stop(): Promise<Recording>;
}

/** Starts the independent recorder against the tree's port (and `/readyz`). */
export function startRecorder(tree: Tree, options: RecorderOptions = {}): Recorder {
  const numbersFile = join(tree.directory, `numbers-${Date.now()}`);
  const stopFile = join(tree.directory, `stop-${Date.now()}`);
  const args = [
    RECORDER,
    "--port",
    String(tree.port),
    "--seconds",
    String(options.maxSeconds ?? 120),
    "--per-request",
    String(options.perRequest ?? 4),
    "--long-lived",
    String(options.longLived ?? 4),
    "--batch",
    String(options.batch ?? 1),
    "--pace-ms",
    String(options.paceMs ?? 10),
    "--numbers-file",
    numbersFile,
    "--stop-file",
    stopFile,
    ...(options.readyz === false ? [] : ["--admin-port", String(tree.adminPort)]),
  ];
  const started = performance.now();
  const child = spawn("python3", args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const done = new Promise<Recording>((resolve, reject) =>
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`upgrade_recorder.py exited ${code}: ${err}`));
      const recording = JSON.parse(out.trim().split("\n").at(-1)!) as Recording;
      recording.numbers = readFileSync(numbersFile, "utf8").split("\n").filter((l) => l !== "")
        .map(Number);
      resolve(recording);
    })
  );
  return {
    now: () => (performance.now() - started) / 1000,
    stop: () => {
      writeFileSync(stopFile, "");
      return done;
    },
  };
}

/**
 * What a `/readyz` probe may meet where the admin port is bound again rather than passed on (it
 * has no SO_REUSEPORT): after a failed upgrade whose new tree had taken the socket, or where no
 * socket could be passed (no /proc), the connection is refused for the moment between the close
 * and the bind, and one queued on the closing listener is reset. A successful upgrade passes the
 * listening socket itself, and the 50-upgrade test allows none of these.
 */
const ADMIN_PORT_PASSING = new Set<number | string>(["refused", "reset"]);

/** The `/readyz` answers that were neither 200 nor the admin port passing between trees. */
export function readyzNotReady(recording: Recording): [number, number | string][] {
  return recording.readyz.filter(([, status]) => status !== 200 && !ADMIN_PORT_PASSING.has(status));
}

/** How many `/readyz` probes met the admin port passing between trees. */
export function readyzPassing(recording: Recording): number {
  return recording.readyz.filter(([, status]) => ADMIN_PORT_PASSING.has(status)).length;
}

/** One line of what a recording saw, for the test's log. */
export function describeRecording(recording: Recording): string {
  const bad = recording.readyz.filter(([, status]) => status !== 200);
  return `${recording.replies} replies in ${recording.seconds} s, ${recording.repeats} repeats, ` +
    `errors ${JSON.stringify(recording.error_kinds)}, longest gap ${recording.longest_gap_ms} ms ` +
    `(${recording.longest_gap_kind}), long-lived connections closed cleanly ` +
    `${recording.clean_closes.long_lived}; /readyz ${recording.readyz.length - bad.length} x ` +
    `200, other ${JSON.stringify(summarize(bad.map(([, status]) => String(status))))}`;
}

function summarize(values: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

/** Asserts that no number was received twice, by the recorder's count and by the test's own. */
export function assertNoRepeats(recording: Recording): void {
  assert.deepEqual(recording.first_repeats, [], "no number served twice");
  assert.equal(new Set(recording.numbers).size, recording.numbers.length, "no number served twice");
}

/**
 * The client errors `/readyz` did not tell: a refusal (or a connection closed unanswered, or
 * reset) at a moment when every `/readyz` answer within `marginS` either side was 200. A process
 * reports running out of numbers within about 100 ms, and the recorder polls every 50 ms.
 *
 * @returns One line per error that readiness did not reflect.
 */
export function readyzLies(recording: Recording, marginS = 0.5): string[] {
  const lies: string[] = [];
  for (const [kind, client, what, at] of recording.errors) {
    if (client !== "per-request") continue;
    const near = recording.readyz.filter(([t]) => Math.abs(t - at) <= marginS);
    if (near.length > 0 && near.every(([, status]) => status === 200)) {
      lies.push(`${kind} at ${at} s (${what}) while /readyz said 200 at ${near.map(([t]) => t)}`);
    }
  }
  return lies;
}

/** The replies received from `fromS` seconds after the recorder's start on. */
export function repliesFrom(recording: Recording, fromS: number): number {
  return recording.per_second.slice(Math.ceil(fromS)).reduce((sum, n) => sum + n, 0);
}

/** Sends `count` lines on one connection and returns the numbers. */
export async function serveLines(port: number, count: number): Promise<number[]> {
  const client = await LineClient.connect(port);
  try {
    const numbers: number[] = [];
    for (let i = 0; i < count; i++) numbers.push(replyNumber(await client.request("x\n")));
    return numbers;
  } finally {
    client.close();
  }
}
