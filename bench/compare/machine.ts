/**
 * What the figures were measured on: cores, CPU, kernel, memory, limits and every program's
 * version, recorded beside the figures as docs/anchors.md asks.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, cpus, release, totalmem } from "node:os";
import { BUN, DENO, SYSTEM_PYTHON } from "./servers.ts";

/** The machine and the software versions. */
export interface MachineInfo {
  date: string;
  cores: number;
  cpu: string;
  kernel: string;
  memoryGiB: number;
  openFilesLimit: string;
  localPortRange: string;
  tcpTwReuse: string;
  taskset: boolean;
  versions: Record<string, string>;
}

function run(argv: string[]): string {
  try {
    // Some programs (nginx -v) print their version on stderr.
    return execFileSync(argv[0]!, argv.slice(1), {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 10_000,
    }).trim();
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string };
    const text = `${e.stdout ?? ""}${e.stderr ?? ""}`.trim();
    return text === "" ? "not available" : text;
  }
}

function runBoth(argv: string[]): string {
  try {
    return execFileSync("sh", ["-c", `${argv.map((a) => `'${a}'`).join(" ")} 2>&1`], {
      encoding: "utf8",
      timeout: 10_000,
    }).trim();
  } catch {
    return "not available";
  }
}

function readProc(path: string): string {
  try {
    return readFileSync(path, "utf8").trim().replace(/\s+/g, " ");
  } catch {
    return "unknown";
  }
}

/**
 * Collects the machine's facts.
 *
 * @returns The facts, with "not available" for a missing program.
 */
export function machineInfo(): MachineInfo {
  return {
    date: new Date().toISOString(),
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? "unknown",
    kernel: release(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    openFilesLimit: runBoth(["sh", "-c", "ulimit -n"]),
    localPortRange: readProc("/proc/sys/net/ipv4/ip_local_port_range"),
    tcpTwReuse: readProc("/proc/sys/net/ipv4/tcp_tw_reuse"),
    taskset: run(["taskset", "-V"]) !== "not available",
    versions: {
      bun: run([BUN, "--version"]),
      deno: (run([DENO, "--version"]).split("\n")[0] ?? "unknown").replace(/^deno /, ""),
      nginx: runBoth(["nginx", "-v"]).replace(/^nginx version: nginx\//, ""),
      redis: run(["redis-server", "--version"]).replace(/^Redis server v=(\S+).*$/, "$1"),
      python: run([SYSTEM_PYTHON, "--version"]).replace(/^Python /, ""),
      gevent: run([SYSTEM_PYTHON, "-c", "import gevent; print(gevent.__version__)"]),
    },
  };
}
