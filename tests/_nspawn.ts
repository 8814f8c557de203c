/**
 * Test fixture: a clean Debian 12 (bookworm) booted under its own systemd with
 * `systemd-nspawn --boot`, for the release lifecycle test (issue 22).
 *
 * The root file system comes from `debootstrap --variant=minbase --include=systemd,systemd-sysv,
 * dbus,init-system-helpers,procps bookworm` (half a minute to a minute from Debian's mirror),
 * built once into a cache directory whose name is a hash of those inputs, so a developer's second
 * run reuses it (CI starts from nothing and builds it once). Each container boots on an overlay
 * over it, so the cached root is never changed and every run starts clean.
 *
 * On a host whose PID 1 is not systemd (these machines), nspawn needs `--register=no` (no
 * machined to register with) and a private mount namespace with a tmpfs on
 * `/run/systemd/nspawn` (otherwise it fails to clean that directory up and exits): `unshare`
 * gives it both, and the overlay lives and dies in the same namespace. The container has its own
 * network namespace (`--private-network`: only loopback), so its port 9000 is its own.
 *
 * Commands run inside through `nsenter -t <its init pid> -a`; clients run from the host in its
 * network namespace only (`nsenter -n`), sharing nothing with what is installed inside.
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { mustRun } from "./_release.ts";

/** The Debian packages and tools the container tests need on the host. */
export const NSPAWN_TOOLS: [string, string][] = [
  ["debootstrap", "debootstrap"],
  ["systemd-nspawn", "systemd-container"],
  ["nsenter", "util-linux"],
  ["unshare", "util-linux"],
  ["python3", "python3"],
];

const SUITE = "bookworm";
// procps: /bin/kill, which the unit's ExecReload runs (the package depends on it; minbase lacks it).
const INCLUDE = "systemd,systemd-sysv,dbus,init-system-helpers,procps";
const MIRROR = process.env.TALLYHO_DEBIAN_MIRROR ?? "http://deb.debian.org/debian";

/**
 * The cached root file system, built first if it is not there yet.
 *
 * @returns Its path, and whether it was built now.
 */
export function debianRoot(): { path: string; built: boolean } {
  const debootstrap = mustRun("debootstrap", ["--version"]).trim();
  const key = createHash("sha256")
    .update(JSON.stringify([SUITE, "minbase", INCLUDE, MIRROR, process.arch, debootstrap]))
    .digest("hex").slice(0, 16);
  const cache = process.env.TALLYHO_CACHE_DIR ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "tallyho");
  const path = join(cache, `debian-${SUITE}-${key}`);
  if (existsSync(join(path, "etc", "os-release"))) return { path, built: false };
  mkdirSync(cache, { recursive: true });
  // Built aside and renamed into place: an interrupted build is never taken for a finished one.
  const partial = mkdtempSync(`${path}.partial-`);
  try {
    mustRun("debootstrap", [
      "--variant=minbase",
      `--include=${INCLUDE}`,
      SUITE,
      partial,
      MIRROR,
    ], { timeout: 600_000 });
    rmSync(path, { recursive: true, force: true });
    renameSync(partial, path);
  } finally {
    rmSync(partial, { recursive: true, force: true });
  }
  return { path, built: true };
}

/** A booted container. */
export interface Container {
  /** Its init's pid, as the host sees it. */
  readonly pid: number;
  /** The container's root as the host sees it (the overlay, inside the fixture's namespace). */
  readonly name: string;
  /**
   * Runs a command inside (every namespace) and fails unless it exits 0.
   *
   * @returns Its standard output.
   */
  run(args: string[], timeoutMs?: number): string;
  /** Runs a command inside and returns its exit status and output, whatever they are. */
  try(args: string[], timeoutMs?: number): { status: number | null; output: string };
  /** As {@linkcode Container.try}, without blocking the test's event loop meanwhile. */
  tryAsync(args: string[], timeoutMs?: number): Promise<{ status: number | null; output: string }>;
  /** Starts a program from the host in the container's network namespace only. */
  spawnInNet(command: string, args: string[]): ChildProcess;
  /** What the console printed so far (boot messages). */
  console(): string;
  /** Powers it off and removes its overlay. */
  stop(): Promise<void>;
}

function nsenter(pid: number, args: string[]): string[] {
  return ["-t", String(pid), "-a", "--", ...args];
}

/** The pid of the container's init: a `systemd` below nspawn, in a pid namespace of its own. */
function findInit(nspawnPid: number): number | null {
  const own = readPidNamespace(process.pid);
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // Gone meanwhile.
    }
  }
  const queue = [...(children.get(nspawnPid) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      if (comm === "systemd" && readPidNamespace(pid) !== own) return pid;
    } catch {
      // Gone meanwhile.
    }
    queue.push(...(children.get(pid) ?? []));
  }
  return null;
}

function readPidNamespace(pid: number): string {
  return spawnSync("readlink", [`/proc/${pid}/ns/pid`], { encoding: "utf8" }).stdout.trim();
}

/**
 * Boots the cached root in a container and waits until its systemd says it is up.
 *
 * @param root The root file system (left unchanged: the container writes to an overlay).
 * @param options `bind`: host directories made visible read-only inside, `host:inside`.
 * @returns The running container.
 */
export async function bootContainer(
  root: string,
  options: { bind?: string[] } = {},
): Promise<Container> {
  const scratch = mkdtempSync(join(tmpdir(), "tallyho-nspawn-"));
  for (const dir of ["upper", "work", "merged"]) mkdirSync(join(scratch, dir));
  const name = `tallyho-test-${process.pid}`;
  const nspawn = [
    "systemd-nspawn",
    "--boot",
    "--register=no",
    // Without it nspawn asks systemd over D-Bus for a scope unit to run in; there is none here.
    "--keep-unit",
    "--private-network",
    "--console=read-only",
    `--machine=${name}`,
    "-D",
    join(scratch, "merged"),
    ...(options.bind ?? []).map((bind) => `--bind-ro=${bind}`),
  ];
  const script = [
    "set -e",
    "mkdir -p /run/systemd/nspawn",
    "mount -t tmpfs tmpfs /run/systemd/nspawn",
    `mount -t overlay overlay -o lowerdir=${root},upperdir=${scratch}/upper,workdir=${scratch}/work ${scratch}/merged`,
    `exec ${nspawn.map((word) => `'${word}'`).join(" ")}`,
  ].join("\n");
  const child = spawn("unshare", ["--mount", "--propagation", "private", "sh", "-c", script], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let consoleText = "";
  child.stdout!.on("data", (chunk: Buffer) => (consoleText += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (consoleText += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let done = false;
  exited.then(() => (done = true));
  const cleanUp = async () => {
    if (!done) {
      // nspawn turns SIGTERM into the container's orderly poweroff.
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(scratch, { recursive: true, force: true });
  };
  try {
    let pid: number | null = null;
    const deadline = Date.now() + 60_000;
    while (pid === null) {
      if (done) throw new Error(`systemd-nspawn exited:\n${consoleText}`);
      if (Date.now() > deadline) throw new Error(`no container init within 60 s:\n${consoleText}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      pid = findInit(child.pid!);
    }
    const init = pid;
    const env = {
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      LANG: "C.UTF-8",
      TERM: "dumb",
      DEBIAN_FRONTEND: "noninteractive",
    };
    const tryRun = (args: string[], timeoutMs = 120_000) => {
      const run = spawnSync("nsenter", nsenter(init, args), {
        encoding: "utf8",
        timeout: timeoutMs,
        env,
      });
      return { status: run.status, output: `${run.stdout ?? ""}${run.stderr ?? ""}` };
    };
    const tryAsync = (args: string[], timeoutMs = 120_000) =>
      new Promise<{ status: number | null; output: string }>((resolve) => {
        const child = spawn("nsenter", nsenter(init, args), { env, stdio: "pipe" });
        let output = "";
        child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.on("close", (status) => {
          clearTimeout(timer);
          resolve({ status, output });
        });
      });
    // `--wait` returns once start-up is over: "running", or "degraded" when a unit failed
    // (in a minimal container some do, such as the getty on a console that is a pipe).
    // Until systemd has made its own socket, systemctl cannot reach it: try again meanwhile.
    let state = tryRun(["systemctl", "is-system-running", "--wait"], 90_000);
    while (/Failed to connect to bus/.test(state.output) && Date.now() < deadline + 30_000) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      state = tryRun(["systemctl", "is-system-running", "--wait"], 90_000);
    }
    if (!/^(running|degraded)/.test(state.output)) {
      throw new Error(`the container did not come up (${state.output.trim()}):\n${consoleText}`);
    }
    return {
      pid: init,
      name,
      run: (args, timeoutMs) => {
        const run = tryRun(args, timeoutMs);
        if (run.status !== 0) {
          throw new Error(
            `in the container: ${args.join(" ")} exited ${run.status}:\n${run.output}`,
          );
        }
        return run.output;
      },
      try: tryRun,
      tryAsync,
      spawnInNet: (command, args) =>
        spawn("nsenter", ["-t", String(init), "-n", "--", command, ...args], {
          stdio: ["pipe", "pipe", "pipe"],
        }),
      console: () => consoleText,
      stop: cleanUp,
    };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}
