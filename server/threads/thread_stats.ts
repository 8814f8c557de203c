/**
 * Per-thread figures in shared memory.
 *
 * Each thread owns one row and is its only writer, so updates are plain stores with no atomics;
 * the main thread reads every row when it reports. A row is a `Float64Array` so counts stay exact
 * far beyond 2^32.
 *
 * @module
 */

/** The figures each thread keeps, in row order. */
export const STAT_NAMES = [
  "connectionsAccepted",
  "connectionsActive",
  "replies",
  "messages",
  "bytesIn",
  "bytesOut",
  "lastNumber",
  "closedLineTooLong",
  "closedNumbersUnavailable",
  "closedPeerError",
  "acceptErrors",
  "rejectedMaxConnections",
  "rejectedAddressCap",
  "rejectedRate",
  "rejectedDenied",
  "untrackedAddresses",
  "healthChecks",
  "closedFirstMessageTimeout",
  "closedIdleTimeout",
  "closedUnfinishedLine",
  "closedSlowReader",
  "readPauses",
  "rejectedProxyHeaderInvalid",
  "rejectedProxyHeaderUntrusted",
  "closedProxyHeaderTimeout",
  "rejectedServerName",
  "rejectedNoDescriptors",
  // Event-loop delay (server/loop_delay.ts): the last interval's percentiles, in ms...
  "loopDelayP50Ms",
  "loopDelayP99Ms",
  "loopDelayMaxMs",
  // ...and every sample since the thread started, as a cumulative histogram: how many were at
  // most each bound (LOOP_DELAY_BOUNDS_MS, in order), how many in all and their sum.
  "loopDelayLe1ms",
  "loopDelayLe2ms",
  "loopDelayLe5ms",
  "loopDelayLe10ms",
  "loopDelayLe25ms",
  "loopDelayLe50ms",
  "loopDelayLe100ms",
  "loopDelayLe250ms",
  "loopDelayLe500ms",
  "loopDelayLe1000ms",
  "loopDelayLe2500ms",
  "loopDelaySamples",
  "loopDelaySumMs",
] as const;

/** One figure's name. */
export type StatName = typeof STAT_NAMES[number];

/** The event-loop delay histogram's bucket names, `loopDelayLe<bound>ms`. */
export type LoopDelayBucket = Extract<StatName, `loopDelayLe${string}`>;

// A bucket added to STAT_NAMES without its bound here fails to compile.
const BOUND_MS: { readonly [K in LoopDelayBucket]: number } = {
  loopDelayLe1ms: 1,
  loopDelayLe2ms: 2,
  loopDelayLe5ms: 5,
  loopDelayLe10ms: 10,
  loopDelayLe25ms: 25,
  loopDelayLe50ms: 50,
  loopDelayLe100ms: 100,
  loopDelayLe250ms: 250,
  loopDelayLe500ms: 500,
  loopDelayLe1000ms: 1000,
  loopDelayLe2500ms: 2500,
};

/** The event-loop delay histogram's buckets, smallest first: each figure and its bound in ms. */
export const LOOP_DELAY_BUCKETS: ReadonlyArray<{ name: LoopDelayBucket; boundMs: number }> =
  STAT_NAMES.filter((name): name is LoopDelayBucket => name in BOUND_MS).map((name) => ({
    name,
    boundMs: BOUND_MS[name],
  }));

/** Index of each figure in a row, for hot paths that update by index. */
export const Stat: { readonly [K in StatName]: number } = Object.fromEntries(
  STAT_NAMES.map((name, index) => [name, index]),
) as { [K in StatName]: number };

const BYTES_PER_ROW = STAT_NAMES.length * Float64Array.BYTES_PER_ELEMENT;

/**
 * Allocates shared memory for `threads` rows.
 *
 * @param threads How many threads report.
 * @returns The shared buffer to hand to each thread.
 */
export function createStatsBuffer(threads: number): SharedArrayBuffer {
  return new SharedArrayBuffer(threads * BYTES_PER_ROW);
}

/**
 * One thread's row, as a writable array indexed by {@linkcode Stat}.
 *
 * @param buffer The buffer from {@linkcode createStatsBuffer}.
 * @param thread The thread's index.
 * @returns The row.
 */
export function statsRow(buffer: SharedArrayBuffer, thread: number): Float64Array {
  return new Float64Array(buffer, thread * BYTES_PER_ROW, STAT_NAMES.length);
}

/** A thread's figures by name. */
export type ThreadFigures = { [K in StatName]: number };

/**
 * Reads every row of a stats buffer.
 *
 * @param buffer The buffer from {@linkcode createStatsBuffer}.
 * @returns One record per thread.
 */
export function readStats(buffer: SharedArrayBuffer): ThreadFigures[] {
  const rows: ThreadFigures[] = [];
  for (let thread = 0; thread * BYTES_PER_ROW < buffer.byteLength; thread++) {
    const row = statsRow(buffer, thread);
    rows.push(
      Object.fromEntries(STAT_NAMES.map((name, i) => [name, row[i]])) as ThreadFigures,
    );
  }
  return rows;
}
