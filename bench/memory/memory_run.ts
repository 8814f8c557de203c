/**
 * One measurement of the memory benchmark: a server started fresh with the processes the
 * connections need, read idle, then while a set of holders opens the connections (the peak) and
 * once its memory has settled with them held (the steady state); every connection is then asked
 * once more, and tallyho's numbers are checked for repeats.
 *
 * @module
 */

import { readMachineMemory } from "../../load/host_memory.ts";
import { sleep } from "../compare/server_process.ts";
import { countRepeats, type ErrorCounts, Holders } from "./holders.ts";
import { isTallyho, type MemoryServerName, RunningServer } from "./memory_servers.ts";
import {
  type MemorySum,
  type ProcessMemory,
  readProcessMemory,
  resetPeak,
  sumMemory,
} from "./proc_memory.ts";

/** Kills what the run in progress started; empty between runs. */
const live = new Set<() => void>();

/** Kills every server and holder started and not yet stopped (on a signal, before exiting). */
export function killEverything(): void {
  for (const kill of live) kill();
  live.clear();
}

/** What one run measured. */
export interface MemoryRun {
  server: MemoryServerName;
  /** Connections asked for. */
  connections: number;
  /** Serving processes (tallyho's, beside its supervisor; or bare processes on one port). */
  processes: number;
  /** Connections held once the holders had set up. */
  held: number;
  failed: number;
  setupMs: number;
  errors: ErrorCounts;
  /** The whole server idle, after its memory settled. */
  idle: MemorySum;
  /** Each process idle: tallyho's supervisor first. */
  idleProcesses: ProcessMemory[];
  idleSupervisorPid: number | null;
  /** The sum of every process's peak RSS (VmHWM, reset once idle) while the connections opened. */
  peakBytes: number;
  /** The most summed RSS seen by sampling every 100 ms meanwhile (a lower bound of the peak). */
  sampledPeakBytes: number;
  /** The whole server with every connection held, after its memory settled. */
  steady: MemorySum;
  /** Whether the steady figure settled (within 0.5 % over 1 s) before the time allowed ran out. */
  settled: boolean;
  /** (peak - idle RSS) / held. */
  perConnectionPeak: number;
  /** (steady - idle RSS) / held. */
  perConnectionSteady: number;
  /**
   * Each process again once every connection had closed and its memory settled: idle after
   * serving, when the code the requests ran is compiled and loaded in the bare server too.
   */
  afterProcesses: ProcessMemory[];
  /** The second message on every held connection. */
  again: { answered: number; same: number; errors: ErrorCounts };
  /** Numbers given to more than one connection; `null` for bare servers (one counter each). */
  repeats: number | null;
  /** Why the run stopped early or what else to know; "" when nothing. */
  note: string;
}

/** How a run is done. */
export interface RunSettings {
  port: number;
  dir: string;
  binary: string;
  inFlight: number;
  setupMs: number;
  settleMs: number;
  /** Stop the run (and kill what it started) when the machine's available memory falls under this. */
  floorBytes: number;
}

function rssOf(pids: number[]): number {
  let total = 0;
  for (const pid of pids) total += readProcessMemory(pid)?.rss ?? 0;
  return total;
}

/**
 * Waits until the summed RSS of `pids` stays within 0.5 % (or 256 KiB) for a second, polling every
 * 250 ms, at most `limitMs`.
 *
 * @returns Whether it settled in time.
 */
async function settle(pids: () => number[], limitMs: number): Promise<boolean> {
  const window: number[] = [];
  const deadline = Date.now() + limitMs;
  for (;;) {
    window.push(rssOf(pids()));
    if (window.length > 5) window.shift();
    if (window.length === 5) {
      const spread = Math.max(...window) - Math.min(...window);
      if (spread <= Math.max(256 * 1024, 0.005 * window[4]!)) return true;
    }
    if (Date.now() >= deadline) return false;
    await sleep(250);
  }
}

/**
 * Measures one server holding `connections`.
 *
 * @param name The server.
 * @param connections How many to hold.
 * @param processes Serving processes.
 * @param settings Where and how.
 * @returns The figures.
 */
export async function measureRun(
  name: MemoryServerName,
  connections: number,
  processes: number,
  settings: RunSettings,
): Promise<MemoryRun> {
  const server = await RunningServer.start(name, {
    port: settings.port,
    processes,
    dir: settings.dir,
    binary: settings.binary,
  });
  let holders: Holders | null = null;
  let note = "";
  const kill = () => {
    holders?.kill();
    server.kill();
  };
  live.add(kill);
  try {
    await settle(() => server.pids(), settings.settleMs);
    const pids = server.pids();
    const idleProcesses = pids.map(readProcessMemory).filter((m) => m !== null);
    const idle = sumMemory(pids);
    for (const pid of pids) resetPeak(pid);
    let sampledPeakBytes = 0;
    const sampler = setInterval(() => {
      sampledPeakBytes = Math.max(sampledPeakBytes, rssOf(pids));
      if (note === "" && readMachineMemory().availableBytes < settings.floorBytes) {
        note = `stopped: the machine's available memory fell under ${
          Math.round(settings.floorBytes / 2 ** 20)
        } MiB`;
        // The holders' exit ends the wait below with an error that carries this note.
        server.stop();
      }
    }, 100);
    let outcome;
    try {
      const hold = await Holders.hold({
        port: settings.port,
        connections,
        inFlight: settings.inFlight,
        setupMs: settings.setupMs,
        lifeMs: settings.setupMs * 3 + settings.settleMs + 60_000,
        dir: settings.dir,
      });
      holders = hold.holders;
      outcome = hold.outcome;
    } catch (error) {
      throw new Error(note || (error as Error).message);
    } finally {
      clearInterval(sampler);
    }
    const peakBytes = sumMemory(pids).peak;
    sampledPeakBytes = Math.max(sampledPeakBytes, rssOf(pids));
    const settled = await settle(() => pids, settings.settleMs);
    const steady = sumMemory(pids);
    const again = await holders.askAgain();
    const numbers = await holders.close();
    holders = null;
    await settle(() => pids, settings.settleMs);
    const afterProcesses = pids.map(readProcessMemory).filter((m) => m !== null);
    if (!server.alive()) note ||= "a server process exited during the run";
    const held = outcome.held;
    const per = (bytes: number) => held > 0 ? Math.round((bytes - idle.rss) / held) : 0;
    return {
      server: name,
      connections,
      processes,
      held,
      failed: outcome.failed,
      setupMs: outcome.setupMs,
      errors: outcome.errors,
      idle,
      idleProcesses,
      idleSupervisorPid: server.supervisorPid(),
      peakBytes,
      sampledPeakBytes,
      steady,
      settled,
      perConnectionPeak: per(peakBytes),
      perConnectionSteady: per(steady.rss),
      afterProcesses,
      again,
      repeats: isTallyho(name) ? countRepeats(numbers) : null,
      note,
    };
  } finally {
    holders?.kill();
    await server.stop();
    live.delete(kill);
  }
}
