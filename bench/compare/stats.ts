/**
 * Medians and ranges of repeated measurements.
 *
 * @module
 */

/** The middle, lowest and highest of some figures. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** How many figures. */
  n: number;
}

/**
 * Summarises figures.
 *
 * @param values At least one figure.
 * @returns Median (mean of the middle two for an even count), min, max and count.
 */
export function spread(values: number[]): Spread {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  const sorted = values.slice().sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1
    ? sorted[middle]!
    : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, n: sorted.length };
}
