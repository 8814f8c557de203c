/**
 * Measures the listen backlog the runtime really uses: opens a listener exactly as a tallyho
 * thread does (the runtime's adapter: `Bun.listen` / `Deno.listen` with `reusePort`), asks the
 * kernel for its backlog with `ss -ltn`, and closes it.
 *
 * The runtimes do not let a program choose the backlog (Bun 1.4 asks for 512, Deno 2.9 for 511)
 * and the kernel silently cuts it to `net.core.somaxconn`, so reading it back is the only way to
 * know how many finished handshakes can wait for each thread to accept them.
 *
 * @module
 */

import { execFile } from "node:child_process";
import type { Listen } from "../adapters/thread_listener.ts";
import { defaultConfig, resolveConfig } from "../config/resolve_config.ts";
import { MessageHandler } from "../numbering/message_handler.ts";
import { monotonicNow } from "../common/clock.ts";
import { NumberLedger } from "../numbering/number_ledger.ts";
import { ConnectionGate, createGateBuffers } from "../limits/connection_gate.ts";
import { createStatsBuffer, statsRow } from "../threads/thread_stats.ts";
import { parseSsBacklog } from "./parse_ss_listen.ts";

/** Options for {@linkcode probeListenBacklog}. */
export interface BacklogProbeOptions {
  /**
   * The address to listen on; port 0, so it never takes a port anyone uses.
   *
   * @default {"127.0.0.1"}
   */
  host?: string;
  /** Starts the listener: the runtime adapter's `listen`, as a thread starts its own. */
  listen: Listen;
  /**
   * Runs `ss` with the given arguments and resolves with what it printed.
   *
   * @default {`ss` from PATH, through node:child_process}
   */
  runSs?: (args: string[]) => Promise<string>;
}

/** What {@linkcode probeListenBacklog} found. */
export interface ListenBacklog {
  /** The backlog the kernel enforces on the listener (ss's Send-Q). */
  backlog: number;
  /** The runtime whose adapter opened the listener. */
  runtime: string;
}

const SS_TIMEOUT_MS = 5_000;

function runSs(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("ss", args, { timeout: SS_TIMEOUT_MS }, (error, stdout, stderr) => {
      if (error) {
        const missing = (error as { code?: unknown }).code === "ENOENT";
        reject(
          new Error(
            missing
              ? "ss is not installed (it comes with iproute2)"
              : `ss ${args.join(" ")} failed: ${String(stderr).trim() || error.message}`,
          ),
        );
      } else resolve(String(stdout));
    });
  });
}

/**
 * Opens a listener on `host` port 0 the way a tallyho thread does, reads its backlog, closes it.
 *
 * @param options Where to listen and how; the defaults are tallyho's own.
 * @returns The backlog and the runtime that opened the listener.
 * @throws {Error} When the listener cannot be opened or `ss` cannot be run or read.
 *
 * @example
 * ```ts
 * const { backlog } = await probeListenBacklog({ listen: runtime.listen });
 * console.log(backlog); // 512 on Bun 1.4 with somaxconn >= 512
 * ```
 */
export async function probeListenBacklog(
  options: BacklogProbeOptions,
): Promise<ListenBacklog> {
  const host = options.host ?? "127.0.0.1";
  const config = resolveConfig({ host, port: 0, threads: 1 }, defaultConfig(1));
  const stats = statsRow(createStatsBuffer(1), 0);
  // No block is ever granted: the probe only listens, it never numbers anyone.
  const handler = new MessageHandler(config, NumberLedger.create(), stats, 0);
  const gate = new ConnectionGate(createGateBuffers(), config, stats);
  const clock = { now: monotonicNow() };
  const listener = await options.listen({
    host,
    port: 0,
    handler,
    stats,
    gate,
    clock,
  });
  try {
    // A filter, not a full listing: the host may have tens of thousands of sockets.
    const text = await (options.runSs ?? runSs)(["-ltn", `sport = :${listener.port}`]);
    return { backlog: parseSsBacklog(text, listener.port), runtime: listener.runtime };
  } finally {
    await listener.shutdown(0);
  }
}
