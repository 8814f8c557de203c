/**
 * A server under test as a child process: started pinned to a core, ready once it accepts a
 * connection, measured from /proc (CPU time, resident memory, its child processes included),
 * and stopped.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { connect, createServer } from "node:net";
import process from "node:process";
import { processCpuSeconds } from "./run_load_generator.ts";

/** How a server is started. */
export interface LaunchSpec {
  /** The program and its arguments. */
  argv: string[];
  /** Where to run it. */
  cwd: string;
  /** The core to pin it to with taskset, or `null` to leave it unpinned. */
  core: number | null;
}

/** A running server. */
export class ServerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  #output = "";
  readonly exited: Promise<number | string>;

  private constructor(child: ChildProcess, port: number) {
    this.child = child;
    this.port = port;
    child.stdout?.on("data", (chunk: Buffer) => this.#remember(chunk));
    child.stderr?.on("data", (chunk: Buffer) => this.#remember(chunk));
    this.exited = new Promise((resolve) =>
      child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"))
    );
  }

  #remember(chunk: Buffer): void {
    // Only the tail matters, for an error message.
    this.#output = (this.#output + chunk.toString()).slice(-4000);
  }

  /**
   * Starts a server and waits until its port accepts a connection.
   *
   * @param spec The command.
   * @param port The port it listens on.
   * @param timeoutMs How long to wait for it.
   * @returns The running server.
   * @throws {Error} When it exits or does not listen in time (with its output).
   */
  static async start(spec: LaunchSpec, port: number, timeoutMs = 20_000): Promise<ServerProcess> {
    const argv = spec.core === null
      ? spec.argv
      : ["taskset", "-c", String(spec.core), ...spec.argv];
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: spec.cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const server = new ServerProcess(child, port);
    let gone: number | string | null = null;
    server.exited.then((code) => (gone = code));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (gone !== null) {
        throw new Error(`${argv.join(" ")} exited with ${gone}: ${server.#output.trim()}`);
      }
      // On a shared machine another process may take the port between freePort() and the
      // server's bind; a connection accepted there must not pass for this server's.
      if (await accepts(port) && server.listensOn(port)) return server;
      await sleep(50);
    }
    await server.stop();
    throw new Error(`${argv.join(" ")} did not listen on ${port} within ${timeoutMs} ms`);
  }

  /** The process and its descendants (nginx's workers). */
  pids(): number[] {
    const all: number[] = [];
    const visit = (pid: number) => {
      all.push(pid);
      for (const child of childrenOf(pid)) visit(child);
    };
    if (this.child.pid !== undefined) visit(this.child.pid);
    return all;
  }

  /** Whether the process is still running. */
  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Whether this process (or a descendant) holds the listening socket on 127.0.0.1:`port`.
   *
   * @param port The port.
   * @returns `true` when one of its file descriptors is that socket.
   */
  listensOn(port: number): boolean {
    const inodes = listeningInodes(port);
    if (inodes.size === 0) return false;
    for (const pid of this.pids()) {
      for (const target of fdTargets(pid)) {
        const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
        if (inode !== undefined && inodes.has(inode)) return true;
      }
    }
    return false;
  }

  /** Open file descriptors of the process and its descendants. */
  openFiles(): number {
    let total = 0;
    for (const pid of this.pids()) total += fdTargets(pid).length;
    return total;
  }

  /** CPU seconds used so far by the process and its descendants. */
  cpuSeconds(): number {
    let total = 0;
    for (const pid of this.pids()) total += processCpuSeconds(pid) ?? 0;
    return total;
  }

  /** Resident memory of the process and its descendants, in bytes. */
  rssBytes(): number {
    let total = 0;
    for (const pid of this.pids()) {
      try {
        const status = readFileSync(`/proc/${pid}/status`, "utf8");
        total += Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
      } catch {
        // Gone.
      }
    }
    return total;
  }

  /** The last lines it printed. */
  output(): string {
    return this.#output;
  }

  /**
   * Stops it: SIGTERM, then SIGKILL if it has not exited within `graceMs`.
   *
   * @param graceMs How long a clean stop may take.
   */
  async stop(graceMs = 5000): Promise<void> {
    const pid = this.child.pid;
    if (pid === undefined || this.child.exitCode !== null) return;
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      for (const child of this.pids()) {
        try {
          process.kill(child, "SIGKILL");
        } catch {
          // Gone.
        }
      }
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

function fdTargets(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return "";
      }
    });
  } catch {
    return [];
  }
}

/** Inodes of the sockets listening on 127.0.0.1 or 0.0.0.0 at `port`, from /proc/net/tcp. */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let table = "";
  try {
    table = readFileSync("/proc/net/tcp", "utf8");
  } catch {
    return inodes;
  }
  for (const line of table.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    // sl local_address rem_address st ... inode (field 9); st 0A is LISTEN.
    const local = fields[1];
    if (fields[3] !== "0A" || local === undefined) continue;
    if (local === `0100007F:${hexPort}` || local === `00000000:${hexPort}`) {
      inodes.add(fields[9]!);
    }
  }
  return inodes;
}

function childrenOf(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
    return text === "" ? [] : text.split(/\s+/).map(Number);
  } catch {
    return [];
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * A port that was free a moment ago on 127.0.0.1.
 *
 * @returns The port.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ port: 0, host: "127.0.0.1" }, () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Waits.
 *
 * @param ms Milliseconds.
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
