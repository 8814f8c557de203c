/**
 * The comparison's raw results: every measurement of every round, written as JSON beside the
 * Markdown report so a reader can recompute any figure.
 *
 * @module
 */

import type { MachineInfo } from "./machine.ts";
import type { CompareWorkload } from "./servers.ts";
import type { LoopDelayFigure } from "./loop_delay_probe.ts";

/** One load run against one server. */
export interface Measurement {
  server: string;
  workload: CompareWorkload;
  round: number;
  repliesPerSecond: number;
  connectionsPerSecond: number;
  p50Us: number;
  p99Us: number;
  errors: number;
  errorKinds: Record<string, number>;
  /** The number check passed (no repeats, no malformed replies). */
  checkOk: boolean;
  /** Fraction of one core the server used over the measured window (1 = saturated). */
  serverCpu: number;
  /** Microseconds of server CPU (process user + system) per reply over the measured window. */
  serverCpuUsPerReply: number;
  /** Fraction of one core the load generator used over its whole run, startup included. */
  clientCpu: number;
  /**
   * How busy the server's core was over the measured window, kernel softirq work included
   * (loopback traffic is largely processed there, charged to no process); `null` unpinned.
   */
  serverCoreBusy: number | null;
  /** The same for the load generator's core, over its whole run. */
  clientCoreBusy: number | null;
  /**
   * Cores' worth of CPU that other work on the machine used during the run (the machine is
   * shared): `othersProcessCpu + othersKernelCpu`. High values mean the figure is low for
   * reasons outside the test.
   */
  othersCpu: number;
  /** Other processes' user and system time, in cores. */
  othersProcessCpu: number;
  /**
   * Busy time on the two pinned cores charged to no process beyond what a run itself causes
   * (`ownKernelAllowance` per core): someone else's softirq, such as a flood on loopback.
   */
  othersKernelCpu: number;
  /** Runs it took: a run disturbed by other work is run again, up to a limit. */
  attempts: number;
  elapsedMs: number;
  /**
   * tallyho's event-loop delay over the run, read from its admin API (`loop_delay_probe.ts`);
   * `null` for other servers or when no read succeeded, absent from results saved before it.
   */
  loopDelay?: LoopDelayFigure | null;
}

/** Resident memory with idle connections open. */
export interface MemoryFigure {
  server: string;
  /** Connections that got their reply and were held open while RSS was read. */
  connections: number;
  idleRssBytes: number;
  loadedRssBytes: number;
  perConnectionBytes: number;
}

/** Everything one comparison run produced. */
export interface CompareResults {
  mode: "quick" | "full";
  machine: MachineInfo;
  settings: {
    rounds: number;
    durationMs: number;
    closedConnections: number;
    pipelinedConnections: number;
    pipelinedDepth: number;
    connectConcurrency: number;
    memoryConnections: number;
    /** Others' CPU (in cores) above which a run is run again. */
    disturbedAbove: number;
    /** Kernel time per pinned core a run may cause itself, not counted as others'. */
    ownKernelAllowance: number;
    /** Most runs per measurement. */
    maxAttempts: number;
    serverCore: number | null;
    clientCore: number | null;
    /** What drove the throughput runs (absent in results from before the native client). */
    driver?: "native" | "tallyho-load";
  };
  servers: Array<{ name: string; label: string; workloads: CompareWorkload[] }>;
  measurements: Measurement[];
  memory: MemoryFigure[];
  /** Servers or runs left out, and why. */
  skipped: Array<{ server: string; reason: string }>;
  elapsedSeconds: number;
}
