/**
 * Live figures of the load threads in shared memory: one row of counters per thread, written
 * only by that thread and read by the main thread for the progress line.
 *
 * @module
 */

/** Column of a thread's row. */
export const LoadStat = {
  requests: 0,
  replies: 1,
  connects: 2,
  errors: 3,
  open: 4,
  held: 5,
} as const;

const COLUMNS = 6;

/**
 * Makes the shared buffer for `threads` rows.
 *
 * @param threads Rows.
 * @returns The buffer, to send to each thread.
 */
export function createLoadStats(threads: number): SharedArrayBuffer {
  return new SharedArrayBuffer(threads * COLUMNS * Float64Array.BYTES_PER_ELEMENT);
}

/**
 * One thread's row.
 *
 * @param buffer The shared buffer.
 * @param thread The row.
 * @returns A view of its counters.
 */
export function loadStatsRow(buffer: SharedArrayBuffer, thread: number): Float64Array {
  return new Float64Array(buffer, thread * COLUMNS * Float64Array.BYTES_PER_ELEMENT, COLUMNS);
}

/**
 * Sums all rows.
 *
 * @param buffer The shared buffer.
 * @returns One row with every thread's figures added up.
 */
export function sumLoadStats(buffer: SharedArrayBuffer): Float64Array {
  const all = new Float64Array(buffer);
  const total = new Float64Array(COLUMNS);
  for (let i = 0; i < all.length; i++) total[i % COLUMNS]! += all[i]!;
  return total;
}
