/**
 * Test fixture: throwaway network namespaces (`ip netns`), for tests that change per-namespace
 * sysctls or flood a loopback without touching the host's own settings or interfaces.
 *
 * These need root. Where they cannot run, a test skips, except under CI (env CI set), where it
 * fails and says why: CI runs as root with the tools installed, so a skip there would hide a
 * broken setup.
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import process from "node:process";
import { sleep } from "./_wait.ts";

/** Runs a command inside namespace `ns` (or on the host when `ns` is null) and waits for it. */
export function run(
  ns: string | null,
  cmd: string,
  args: string[],
): { code: number | null; stdout: string; stderr: string } {
  const full = ns === null ? [cmd, ...args] : ["ip", "netns", "exec", ns, cmd, ...args];
  const result = spawnSync(full[0]!, full.slice(1), { encoding: "utf8", timeout: 30_000 });
  return {
    code: result.status,
    stdout: result.stdout ?? "",
    stderr: result.stderr ?? String(result.error ?? ""),
  };
}

/** Like {@linkcode run}, but throws with the command and its stderr when it fails. */
export function mustRun(ns: string | null, cmd: string, args: string[]): string {
  const result = run(ns, cmd, args);
  if (result.code !== 0) {
    throw new Error(
      `${ns ? `ip netns exec ${ns} ` : ""}${cmd} ${args.join(" ")} exited ${result.code}: ` +
        result.stderr.trim(),
    );
  }
  return result.stdout;
}

function onPath(tool: string): boolean {
  return (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")
    .some((dir) => dir && existsSync(`${dir}/${tool}`));
}

/**
 * Says why namespace tests cannot run here, or null when they can: not root, a missing tool, or
 * a kernel/container that refuses `ip netns add` (tried with a throwaway namespace).
 *
 * @param tools Programs the test needs besides `ip`.
 * @returns The reason, or null.
 */
export function netnsUnavailable(tools: string[] = []): string | null {
  if (process.getuid?.() !== 0) return "needs root to create network namespaces";
  for (const tool of ["ip", ...tools]) {
    if (!onPath(tool)) return `needs ${tool} on PATH (apt-get install iproute2 hping3 iptables)`;
  }
  const probe = `tallyho-probe-${randomBytes(4).toString("hex")}`;
  const added = run(null, "ip", ["netns", "add", probe]);
  if (added.code !== 0) return `'ip netns add' fails here: ${added.stderr.trim()}`;
  run(null, "ip", ["netns", "delete", probe]);
  return null;
}

/**
 * The `skip` option for a namespace test: a reason off CI, never on CI (the test then fails).
 *
 * @param unavailable What {@linkcode netnsUnavailable} said.
 */
export function skipUnlessCi(unavailable: string | null): string | false {
  return unavailable !== null && !process.env.CI ? `skipped: ${unavailable}` : false;
}

/**
 * Fails the test when the namespace tests cannot run (only reached on CI, or when they can).
 *
 * @param unavailable What {@linkcode netnsUnavailable} said.
 */
export function requireNetns(unavailable: string | null): void {
  if (unavailable !== null) {
    throw new Error(`CI is set, so this test must run, but it cannot: ${unavailable}`);
  }
}

/**
 * Creates a namespace named `<prefix>-<random>` with its loopback up.
 *
 * @param prefix The name's start, e.g. `tallyho-doc`.
 * @returns The name; pass it to {@linkcode deleteNetns} in a `finally`.
 */
export function createNetns(prefix: string): string {
  const name = `${prefix}-${randomBytes(4).toString("hex")}`;
  mustRun(null, "ip", ["netns", "add", name]);
  try {
    mustRun(name, "ip", ["link", "set", "lo", "up"]);
  } catch (error) {
    run(null, "ip", ["netns", "delete", name]);
    throw error;
  }
  return name;
}

/**
 * Kills what the test started inside the namespace, then deletes it. A namespace lives on while
 * any process is in it, so the processes go first.
 *
 * @param name The namespace.
 * @param children Processes started in it.
 */
export async function deleteNetns(name: string, children: ChildProcess[] = []): Promise<void> {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    try {
      process.kill(child.pid!, "SIGKILL");
    } catch {
      // Already gone.
    }
    await Promise.race([exited, sleep(2_000)]);
  }
  run(null, "ip", ["netns", "delete", name]);
}

/**
 * Starts a long-running command inside a namespace. `ip netns exec` execs the command in its
 * own process, so the child's pid is the command's.
 *
 * @param ns The namespace.
 * @param cmd The program.
 * @param args Its arguments.
 * @param cwd Where to run it.
 * @returns The child, with stdout and stderr piped.
 */
export function spawnIn(ns: string, cmd: string, args: string[], cwd?: string): ChildProcess {
  return spawn("ip", ["netns", "exec", ns, cmd, ...args], {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/**
 * Collects a child's output and resolves when it exits.
 *
 * @param child The process.
 * @returns Its exit code (or signal name) and everything it printed.
 */
export function finished(
  child: ChildProcess,
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) =>
    child.on(
      "close",
      (code, signal) => resolve({ code: code ?? signal ?? "unknown", stdout, stderr }),
    )
  );
}
