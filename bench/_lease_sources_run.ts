/**
 * The figures one run of bench/lease_source_bench.ts measures on one runtime, as it writes them
 * with `--json` and bench/lease_sources_section.ts reads them.
 *
 * @module
 */

/** Leases of one block each, back to back, from one or more sources on one key. */
export interface LeaseFigure {
  source: "etcd" | "redis";
  /** Sources leasing at once (each one supervisor's). */
  sources: number;
  /** Leases per source. */
  leases: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Leases granted per second, all sources together. */
  leasesPerSecond: number;
}

/** One serving process under pipelined load with its numbers from one source. */
export interface ServeFigure {
  source: "memory" | "redis" | "etcd";
  repliesPerSecond: number;
  p50Us: number;
  p99Us: number;
  /** Whether the load generator's number check passed (no number twice). */
  checkOk: boolean;
  /** Leases the server logged from etcd (0 for the others). */
  etcdLeases: number;
}

/** One runtime's run. */
export interface LeaseSourcesRun {
  /** `bun 1.4.5`, `deno 2.9.6`. */
  runtime: string;
  cores: number;
  cpu: string;
  kernel: string;
  /** ISO 8601. */
  started: string;
  /** The 1-minute load average when the run started and when it ended. */
  loadAverage: { before: number; after: number };
  /** Numbers per block. */
  blockSize: number;
  /** Most blocks one lease of a serving process asks for. */
  maxBlocksPerLease: number;
  lease: LeaseFigure[];
  serve: ServeFigure[];
}
