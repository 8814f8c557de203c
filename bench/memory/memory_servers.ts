/**
 * The servers the memory benchmark measures: the smallest bare `Bun.listen` and `Deno.listen`
 * servers (bench/compare's, as many processes as tallyho has, sharing the port with
 * SO_REUSEPORT) and tallyho on Bun, on Deno and compiled, each started on one port with the
 * processes the connections need.
 *
 * @module
 */

import { join } from "node:path";
import process from "node:process";
import { adminArgs } from "../compare/loop_delay_probe.ts";
import { ServerProcess, sleep } from "../compare/server_process.ts";
import { BUN, DENO, ROOT } from "../compare/servers.ts";
import { processTree } from "./proc_memory.ts";

/** The servers, in the order the report lists them. */
export const MEMORY_SERVERS = [
  "bare-bun",
  "tallyho-bun",
  "tallyho-binary",
  "bare-deno",
  "tallyho-deno",
] as const;

/** One of {@linkcode MEMORY_SERVERS}. */
export type MemoryServerName = typeof MEMORY_SERVERS[number];

/** The bare server each tallyho is compared with. */
export const BARE_OF: Record<MemoryServerName, MemoryServerName> = {
  "bare-bun": "bare-bun",
  "tallyho-bun": "bare-bun",
  "tallyho-binary": "bare-bun",
  "bare-deno": "bare-deno",
  "tallyho-deno": "bare-deno",
};

/** What each server is, for the report. */
export const LABELS: Record<MemoryServerName, string> = {
  "bare-bun": "bare `Bun.listen` (bench/compare/bare_bun_server.ts, main thread only)",
  "bare-deno": "bare `Deno.listen` (bench/compare/bare_deno_server.ts, a 256-byte read buffer " +
    "per connection)",
  "tallyho-bun": "tallyho on Bun (`bun mod.ts`)",
  "tallyho-binary": "tallyho compiled (`./compile.sh`)",
  "tallyho-deno": "tallyho on Deno (`deno run -A --unstable-net mod.ts`)",
};

/** Whether a server is tallyho (a supervisor and serving processes) rather than bare. */
export function isTallyho(name: MemoryServerName): boolean {
  return name.startsWith("tallyho-");
}

/** Per-connection settings every tallyho run uses, and why. */
export const TALLYHO_FLAGS = [
  "--threads",
  "1",
  // Held connections stay silent after their first reply; no timeout may close them mid-run.
  "--idle-timeout",
  "0",
  // Every held connection comes from a few loopback addresses; the bare servers have no cap.
  "--max-connections-per-address",
  "0",
  "--log-level",
  "warn",
];

/** A running server: one tallyho tree, or several bare processes on one port. */
export class RunningServer {
  readonly #processes: ServerProcess[];
  readonly name: MemoryServerName;

  private constructor(name: MemoryServerName, processes: ServerProcess[]) {
    this.name = name;
    this.#processes = processes;
  }

  /**
   * Starts a server and waits until every one of its serving processes listens.
   *
   * @param name Which server.
   * @param options The port, serving processes, a private directory and tallyho's binary.
   * @returns The running server.
   */
  static async start(
    name: MemoryServerName,
    options: { port: number; processes: number; dir: string; binary: string },
  ): Promise<RunningServer> {
    const { port, processes, dir } = options;
    if (!isTallyho(name)) {
      const argv = name === "bare-bun"
        ? [BUN, join(ROOT, "bench/compare/bare_bun_server.ts"), String(port), "--reuse-port"]
        : [
          DENO,
          "run",
          "-A",
          "--unstable-net",
          join(ROOT, "bench/compare/bare_deno_server.ts"),
          String(port),
          "--reuse-port",
          "--read-bytes",
          "256",
        ];
      const started: ServerProcess[] = [];
      try {
        for (let i = 0; i < processes; i++) {
          started.push(await ServerProcess.start({ argv, cwd: ROOT, core: null }, port, 60_000));
        }
      } catch (error) {
        await Promise.all(started.map((server) => server.stop(1000)));
        throw error;
      }
      return new RunningServer(name, started);
    }
    const command = name === "tallyho-binary"
      ? [options.binary]
      : name === "tallyho-bun"
      ? [BUN, join(ROOT, "mod.ts")]
      : [DENO, "run", "-A", "--unstable-net", join(ROOT, "mod.ts")];
    const server = await ServerProcess.start(
      {
        argv: [
          ...command,
          "serve",
          "--host",
          "127.0.0.1",
          "--port",
          String(port),
          "--processes",
          String(processes),
          ...TALLYHO_FLAGS,
          // The admin API on, as tallyho runs by default, on a free port.
          ...adminArgs(dir),
        ],
        cwd: dir,
        core: null,
      },
      port,
      60_000,
    );
    // The port answers once one process listens; the start line comes once all of them do.
    const deadline = Date.now() + 120_000;
    while (!/listening on/.test(server.output())) {
      if (!server.alive() || Date.now() > deadline) {
        await server.stop(1000);
        throw new Error(`${name} did not start ${processes} processes: ${server.output()}`);
      }
      await sleep(50);
    }
    return new RunningServer(name, [server]);
  }

  /** Every process of the server: a tallyho supervisor first, then its serving processes. */
  pids(): number[] {
    return this.#processes.flatMap((server) =>
      server.child.pid === undefined ? [] : processTree(server.child.pid)
    );
  }

  /** tallyho's supervisor, or `null` for a bare server. */
  supervisorPid(): number | null {
    return isTallyho(this.name) ? this.#processes[0]?.child.pid ?? null : null;
  }

  /** The processes that hold connections. */
  servingPids(): number[] {
    const supervisor = this.supervisorPid();
    return this.pids().filter((pid) => pid !== supervisor);
  }

  /** Whether every process started is still running. */
  alive(): boolean {
    return this.#processes.every((server) => server.alive());
  }

  /** Kills every process at once (on a signal or when the machine runs short of memory). */
  kill(): void {
    for (const pid of this.pids()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Gone already.
      }
    }
  }

  /** Stops every process (SIGTERM, then SIGKILL after a grace). */
  async stop(): Promise<void> {
    await Promise.all(this.#processes.map((server) => server.stop(10_000)));
  }
}
