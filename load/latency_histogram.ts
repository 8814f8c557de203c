/**
 * A latency histogram with bounded relative error, in the manner of HdrHistogram: log-linear
 * buckets, so memory is fixed (a few thousand counters) however many samples are recorded.
 *
 * Values are integer nanoseconds. Below 2^8 every value has its own bucket (exact). Above, each
 * power of two is split into 2^7 equal buckets, so a bucket is at most 1/128 of its lower edge
 * wide, and the midpoint that a percentile reports is within {@linkcode RELATIVE_ERROR_BOUND}
 * (1/256, about 0.39 %) of every value in the bucket. Minimum and maximum are kept exactly.
 *
 * @module
 */

/** Bits of sub-bucket resolution; 2^(SUB_BITS-1) buckets per power of two. */
const SUB_BITS = 8;
const SUB_COUNT = 1 << SUB_BITS;
const HALF_COUNT = SUB_COUNT >> 1;
/** Largest value with its own bucket; larger ones are counted in the last (max is exact). */
const HIGHEST_TRACKABLE_NS = 2 ** 40; // about 18 minutes
const TWO_32 = 2 ** 32;

/**
 * Largest relative difference between a reported percentile and the value it stands for:
 * `|reported - true| <= RELATIVE_ERROR_BOUND * true`.
 */
export const RELATIVE_ERROR_BOUND = 1 / SUB_COUNT;

function bucketIndex(value: number): number {
  if (value < SUB_COUNT) return value;
  // floor(log2(value)) without floating point: clz32 on the low or the high 32 bits.
  if (value < TWO_32) {
    const shift = 32 - SUB_BITS - Math.clz32(value);
    return shift * HALF_COUNT + (value >>> shift);
  }
  const shift = 64 - SUB_BITS - Math.clz32(Math.floor(value / TWO_32));
  return shift * HALF_COUNT + Math.floor(value / 2 ** shift);
}

const BUCKET_COUNT = bucketIndex(HIGHEST_TRACKABLE_NS) + 1;

/** Lower edge and width of bucket `index`. */
function bucketRange(index: number): [number, number] {
  if (index < SUB_COUNT) return [index, 1];
  const shift = Math.floor(index / HALF_COUNT) - 1;
  const width = 2 ** shift;
  return [(index - shift * HALF_COUNT) * width, width];
}

/** Counts of latencies in log-linear buckets; merge per-thread histograms with `add`. */
export class LatencyHistogram {
  /** Samples per bucket (Float64: exact past 2^32 samples). */
  readonly counts: Float64Array;
  /** Samples recorded. */
  count = 0;
  /** Smallest value recorded, exact; `Infinity` when empty. */
  min = Infinity;
  /** Largest value recorded, exact; `0` when empty. */
  max = 0;
  /** Sum of the values, for the mean. */
  sum = 0;

  /** @param counts Bucket counts to start from (as sent from another thread). */
  constructor(counts?: Float64Array) {
    this.counts = counts ?? new Float64Array(BUCKET_COUNT);
  }

  /**
   * Records one value.
   *
   * @param nanoseconds A latency; negative values count as 0, fractions are rounded.
   */
  record(nanoseconds: number): void {
    const value = nanoseconds > 0 ? Math.round(nanoseconds) : 0;
    const index = value < HIGHEST_TRACKABLE_NS ? bucketIndex(value) : BUCKET_COUNT - 1;
    this.counts[index]!++;
    this.count++;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }

  /**
   * Adds another histogram's samples to this one.
   *
   * @param other Counts and extremes from another thread.
   */
  add(other: Pick<LatencyHistogram, "counts" | "count" | "min" | "max" | "sum">): void {
    if (other.counts.length !== this.counts.length) {
      throw new RangeError(
        `Cannot merge histograms with ${other.counts.length} and ${this.counts.length} buckets`,
      );
    }
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
  }

  /**
   * The value at a percentile, by nearest rank: the smallest recorded value with at least
   * `percentile` % of the samples at or below it, within {@linkcode RELATIVE_ERROR_BOUND}.
   *
   * @param percentile From 0 to 100.
   * @returns Nanoseconds; 0 when the histogram is empty.
   */
  percentile(percentile: number): number {
    if (!(percentile >= 0 && percentile <= 100)) {
      throw new RangeError(`'percentile' must be from 0 to 100: got ${percentile}`);
    }
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((percentile / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        // The last bucket also holds everything past the trackable range.
        if (i === BUCKET_COUNT - 1) return this.max;
        const [low, width] = bucketRange(i);
        const middle = width === 1 ? low : low + width / 2;
        // The exact extremes are better answers than a midpoint when they fall in this bucket.
        return Math.min(this.max, Math.max(this.min, middle));
      }
    }
    return this.max;
  }

  /** Mean in nanoseconds; 0 when empty. */
  mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }
}
