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
  "closedFirstMessageTimeout",
  "closedIdleTimeout",
  "closedUnfinishedLine",
  "closedSlowReader",
  "readPauses",
  "rejectedProxyHeaderInvalid",
  "rejectedProxyHeaderUntrusted",
  "closedProxyHeaderTimeout",
] as const;

/** One figure's name. */
export type StatName = typeof STAT_NAMES[number];

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
