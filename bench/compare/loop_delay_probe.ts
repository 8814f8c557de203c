/**
 * Reads a tallyho server's event-loop delay over a measured window from its admin API, so the
 * report can say how long its loop stalled under each workload.
 *
 * Each serving thread reports, once a second, the p99 and the longest delay of its timer over
 * the last interval (server/loop_delay.ts); the maximum is kept a whole interval after it
 * happened, so reading `/v1/stats` every half second misses none. The probe keeps the worst of
 * what it reads during the window and once more an interval after it (the children report once
 * a second, so the window's last second is in that read). The figures are therefore the worst
 * one-second p99 and the longest single delay the window saw, never an average over it.
 *
 * The admin API runs in the supervisor on the server's pinned core: two small HTTP requests a
 * second, against tens of thousands of replies a second, change nothing measurable.
 *
 * @module
 */

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { sleep } from "./server_process.ts";

/** A token of 64 hex digits: any fixed one will do, the admin API listens on loopback only. */
const TOKEN = "7a11e0".padEnd(64, "0");
const POLL_EVERY_MS = 500;
/** One stats report and one loop-delay interval: the last read covers the window's end. */
const SETTLE_MS = 1100;

/** A tallyho run's event-loop delay over a measured window. */
export interface LoopDelayFigure {
  /** The worst thread's p99 over its worst one-second interval in the window, in ms. */
  p99Ms: number;
  /** The longest delay any thread saw in the window, in ms. */
  maxMs: number;
  /** Reads of `/v1/stats` the figures come from. */
  reads: number;
}

/**
 * The flags that give a tallyho server an admin API on a free loopback port with a known token.
 *
 * @param dir The server's private temporary directory (the token file goes there).
 * @returns Flags for `tallyho serve`.
 */
export function adminArgs(dir: string): string[] {
  const tokenFile = join(dir, "admin-token");
  writeFileSync(tokenFile, TOKEN + "\n", { mode: 0o600 });
  return ["--admin", "127.0.0.1:0", "--admin-token-file", tokenFile];
}

/**
 * Finds the admin API's address in a server's start-up output (`admin API on http://...`).
 *
 * @param output Reads the server's output so far.
 * @param timeoutMs How long to wait for the line.
 * @returns The base URL, or `null` when the server printed none in time.
 */
export async function adminUrlFrom(output: () => string, timeoutMs = 5000): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const url = /admin API on (http:\/\/[^/\s]+\/)/.exec(output())?.[1];
    if (url !== undefined) return url;
    if (Date.now() >= deadline) return null;
    await sleep(50);
  }
}

interface StatsTotals {
  totals: { loopDelayP99Ms: number; loopDelayMaxMs: number };
}

async function readTotals(url: string): Promise<StatsTotals["totals"] | null> {
  try {
    const response = await fetch(new URL("v1/stats", url), {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: AbortSignal.timeout(2000),
    });
    if (!response.ok) return null;
    return ((await response.json()) as StatsTotals).totals;
  } catch {
    // A read lost to a loaded core: the next one covers the same interval.
    return null;
  }
}

/** Watches a server's event-loop delay from {@linkcode watch} until {@linkcode stop}. */
export class LoopDelayProbe {
  readonly #url: string;
  #p99 = 0;
  #max = 0;
  #reads = 0;
  #watching = true;
  readonly #loop: Promise<void>;

  private constructor(url: string) {
    this.#url = url;
    this.#loop = this.#poll();
  }

  /**
   * Starts reading, once every half second.
   *
   * @param url The admin API's base URL (from {@linkcode adminUrlFrom}).
   * @returns The running probe.
   */
  static watch(url: string): LoopDelayProbe {
    return new LoopDelayProbe(url);
  }

  async #poll(): Promise<void> {
    // The first read waits an interval: one at once would report the second before the load.
    await sleep(SETTLE_MS - POLL_EVERY_MS);
    while (this.#watching) {
      await sleep(POLL_EVERY_MS);
      if (this.#watching) await this.#read();
    }
  }

  async #read(): Promise<void> {
    const totals = await readTotals(this.#url);
    if (totals === null) return;
    this.#reads++;
    this.#p99 = Math.max(this.#p99, totals.loopDelayP99Ms);
    this.#max = Math.max(this.#max, totals.loopDelayMaxMs);
  }

  /** Stops reading, for a run that failed. */
  cancel(): void {
    this.#watching = false;
  }

  /**
   * Reads once more an interval after the window ended and stops.
   *
   * @returns The window's figures, or `null` when no read succeeded.
   */
  async stop(): Promise<LoopDelayFigure | null> {
    await sleep(SETTLE_MS);
    this.#watching = false;
    await this.#loop;
    await this.#read();
    return this.#reads === 0 ? null : { p99Ms: this.#p99, maxMs: this.#max, reads: this.#reads };
  }
}
