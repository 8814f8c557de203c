/**
 * Test fixture: the real server as a subprocess, on the run's target (tests/_target.ts:
 * `TALLYHO_TARGET=bun|deno|binary`, by default the runtime running the tests). The compiled
 * binary runs from a temporary directory, to prove it needs nothing beside it.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { STATS_EVERY_ENV } from "../server/process/_stats_every.ts";
import { BINARY, ROOT, scriptCommand, TARGET, type Target } from "./_target.ts";
import { waitUntil } from "./_wait.ts";

export { ROOT };
/** Which server the suite drives (the run's target), for test names and messages. */
export const UNDER_TEST: Target = TARGET;

/** The directories binary runs were started in, removed when the test process exits. */
const binaryCwds: string[] = [];

/**
 * A fresh empty directory to start the binary in (it must not lean on the repository's files).
 * Each is removed when the test process exits: they used to stay behind, one per server started.
 */
function binaryCwd(): string {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-bin-"));
  if (binaryCwds.push(dir) === 1) {
    const removeAll = () => {
      for (const path of binaryCwds.splice(0)) rmSync(path, { recursive: true, force: true });
    };
    // Bun's test runner emits process "exit"; Deno's does not, but dispatches "unload".
    process.on("exit", removeAll);
    globalThis.addEventListener?.("unload", removeAll);
  }
  return dir;
}

/**
 * The command that runs tallyho with the given arguments.
 *
 * @param args CLI arguments.
 * @returns The program, its arguments and the directory to run it in.
 */
export function tallyhoCommand(args: string[]): { cmd: string; argv: string[]; cwd: string } {
  if (BINARY !== null) return { cmd: BINARY, argv: args, cwd: binaryCwd() };
  return { ...scriptCommand(join(ROOT, "mod.ts"), args), cwd: ROOT };
}

/** The admin token every test server is started with. */
export const ADMIN_TOKEN = "tallyho-test-token-0123456789abcdef";

/**
 * The environment (`StartOptions.env`) for a server whose processes report their figures every
 * 50 ms instead of every second, for a test that waits for a report.
 */
export const FAST_STATS: Readonly<Record<string, string>> = { [STATS_EVERY_ENV]: "50" };

/** A server started by {@linkcode startTallyho}. */
export interface TestServer {
  readonly port: number;
  /** The supervisor's pid. */
  readonly pid: number;
  /** The admin API's base URL (`http://127.0.0.1:PORT`), or null when started with it off. */
  readonly adminUrl: string | null;
  /** Calls the admin API with the test token. */
  admin(path: string, init?: RequestInit): Promise<Response>;
  /** Each serving process's pid by index, as last logged ("process I listening (pid P)"). */
  childPids(): Map<number, number>;
  /** Resolves once `pattern` appears in the output, or rejects after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  readonly child: ChildProcess;
  /** Everything printed so far. */
  output(): string;
  /** Resident memory of the server process, in bytes (Linux). */
  rss(): number;
  /** Sends `signal` and resolves with the exit code (or the signal's name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
  /** Resolves when the process exits, with its exit code or signal name. */
  exited: Promise<number | string>;
}

/** Options for {@linkcode startTallyho}. */
export interface StartOptions {
  /**
   * A command that execs the server (so the pid stays the server's), such as
   * `["prlimit", "--nofile=300"]` to start it under a low open-file limit.
   * @default {[]}
   */
  wrap?: string[];
  /**
   * Variables added to the server's environment.
   * @default {{}}
   */
  env?: Record<string, string>;
  /**
   * Variables taken out of the server's environment (`TALLYHO_ADMIN_TOKEN` for a generated
   * token, `XDG_RUNTIME_DIR`).
   * @default {[]}
   */
  unset?: string[];
  /**
   * Started as the leader of a process group of its own, which `process.kill(-pid, signal)`
   * signals whole, as a terminal's Ctrl-C does.
   * @default {false}
   */
  detached?: boolean;
}

/**
 * Starts tallyho and waits for its "listening on" line.
 *
 * @param args CLI arguments; `--port 0` and `--host 127.0.0.1` are added unless given.
 * @param options How to start it.
 * @returns The running server.
 */
export function startTallyho(
  args: string[] = [],
  options: StartOptions = {},
): Promise<TestServer> {
  const full = [...args];
  if (!full.includes("--port")) full.push("--port", "0");
  if (!full.includes("--host")) full.push("--host", "127.0.0.1");
  if (!full.includes("--admin")) full.push("--admin", "127.0.0.1:0");
  const command = tallyhoCommand(["serve", ...full]);
  const { cwd } = command;
  const [cmd, ...argv] = [...(options.wrap ?? []), command.cmd, ...command.argv] as [
    string,
    ...string[],
  ];
  const env: Record<string, string | undefined> = {
    ...process.env,
    TALLYHO_ADMIN_TOKEN: ADMIN_TOKEN,
    ...options.env,
  };
  for (const name of options.unset ?? []) delete env[name];
  const child = spawn(cmd, argv, {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
    env,
    detached: options.detached ?? false,
  });
  let output = "";
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"))
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`tallyho did not start within 20 s; output:\n${output}`));
    }, 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on \S+:(\d+)/.exec(output);
      const adminOff = argv.includes("off");
      const adminMatch = /admin API on (http:\/\/[^/\s]+)\//.exec(output);
      if (match && (adminOff || adminMatch)) {
        const adminUrl = adminMatch ? adminMatch[1]! : null;
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        child.stdout?.on("data", (more: Buffer) => (output += more.toString()));
        resolve({
          port: Number(match[1]),
          pid: child.pid!,
          adminUrl,
          admin: (path, init = {}) => {
            const headers = new Headers(init.headers);
            if (!headers.has("authorization")) {
              headers.set("authorization", `Bearer ${ADMIN_TOKEN}`);
            }
            return fetch(`${adminUrl}${path}`, { ...init, headers });
          },
          child,
          output: () => output,
          childPids: () => {
            const pids = new Map<number, number>();
            for (const match of output.matchAll(/process (\d+) listening \(pid (\d+)\)/g)) {
              pids.set(Number(match[1]), Number(match[2]));
            }
            return pids;
          },
          waitFor: (pattern, timeoutMs = 10_000) =>
            waitUntil(() => pattern.exec(output), {
              what: () => `${pattern} in the output:\n${output}`,
              timeoutMs,
            }),
          rss: () => readRss(child.pid!),
          stop: (signal = "SIGTERM") => {
            // process.kill, not child.kill: Deno's node:child_process records a signal sent with
            // child.kill as the exit cause even when the child catches it and exits 0, and refuses
            // a second signal (denoland/deno#36643).
            try {
              process.kill(child.pid!, signal);
            } catch {
              // Already gone.
            }
            return exited;
          },
          exited,
        });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`tallyho exited with ${code} before listening; output:\n${output}`));
    });
  });
}

/**
 * A `serve` command line that names no admin address gets one on port 0, as startTallyho's do:
 * the default (127.0.0.1:9001) may be held by anything else on the machine (an operator's own
 * tallyho, a test file beside this one), and a start that fails there would hide the failure the
 * test is about. One with `--config` is left as it is: the file may name the admin address.
 */
function withFreeAdmin(args: string[]): string[] {
  const first = args[0] ?? "";
  const serves = first === "serve" ||
    (first.startsWith("-") && !/^(-h|--help|--version)$/.test(first));
  if (!serves || args.includes("--admin") || args.includes("--config")) return args;
  // In front of the others, so that a command line the test made bad stays bad the same way
  // (`--port` without its value still ends the line).
  return first === "serve"
    ? ["serve", "--admin", "127.0.0.1:0", ...args.slice(1)]
    : ["--admin", "127.0.0.1:0", ...args];
}

/**
 * Runs tallyho to completion (for commands that exit by themselves). A `serve` without `--admin`
 * (or `--config`) gets `--admin 127.0.0.1:0` (see withFreeAdmin).
 *
 * @param args CLI arguments.
 * @param timeoutMs Kill it after this long.
 * @param env Its environment.
 * @returns Exit code, stdout and stderr.
 */
export function runTallyho(
  args: string[],
  timeoutMs = 20_000,
  env: Record<string, string | undefined> = process.env,
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const { cmd, argv, cwd } = tallyhoCommand(withFreeAdmin(args));
  const child = spawn(cmd, argv, { cwd, stdio: ["ignore", "pipe", "pipe"], env });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? "unknown", stdout, stderr });
    })
  );
}

/**
 * Resident memory of a process, from /proc.
 *
 * @param pid The process.
 * @returns Bytes.
 */
export function readRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/**
 * Whether a process still runs. A zombie (killed, and not yet reaped by its parent: orphans of a
 * killed supervisor wait for init here) does not, though `kill(pid, 0)` still finds it.
 *
 * @param pid The process.
 */
export function isAlive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/**
 * Asks the server's `/readyz` until it answers `want` or `ms` have passed.
 *
 * @param server A server from {@linkcode startTallyho}.
 * @param want The status waited for.
 * @param ms How long to wait.
 * @returns The last status it answered (for the caller to assert on).
 */
export async function readyzWithin(server: TestServer, want: number, ms: number): Promise<number> {
  let status = 0;
  try {
    await waitUntil(async () => {
      const response = await fetch(`${server.adminUrl}/readyz`);
      await response.body?.cancel();
      status = response.status;
      return status === want;
    }, { timeoutMs: ms, everyMs: 50 });
  } catch {
    // Not within ms: the caller asserts on the status.
  }
  return status;
}
