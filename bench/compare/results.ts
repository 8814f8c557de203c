/**
 * The comparison's raw results: every measurement of every round, written as JSON beside the
 * Markdown report so a reader can recompute any figure.
 *
 * @module
 */

import type { MachineInfo } from "./machine.ts";
import type { CompareWorkload } from "./servers.ts";

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
  /** Fraction of one core the load generator used over its whole run, startup included. */
  clientCpu: number;
  elapsedMs: number;
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
    serverCore: number | null;
    clientCore: number | null;
  };
  servers: Array<{ name: string; label: string; workloads: CompareWorkload[] }>;
  measurements: Measurement[];
  memory: MemoryFigure[];
  /** Servers or runs left out, and why. */
  skipped: Array<{ server: string; reason: string }>;
  elapsedSeconds: number;
}
