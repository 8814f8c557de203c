/**
 * The error a lease fails with when the number source went backwards: it would hand this server
 * numbers it knows were already leased. In a module of its own so the supervisor and the Redis
 * source can name it without loading each other.
 *
 * @module
 */

/** Options for {@linkcode LeaseBehindError}. */
export interface LeaseBehindOptions {
  /**
   * Seen by watching the source between leases (while this server still holds numbers), not by
   * a lease refused.
   * @default {false}
   */
  watched?: boolean;
}

/**
 * A lease refused because it would start at or below this server's mark, the highest number it
 * knows was leased from the source (by itself, or by another server as it read the source): the
 * source went backwards (a Redis key overwritten, lost or restored from an older snapshot, a
 * state file replaced). The run is never served.
 *
 * The advice it gives is what is safe with many servers on one source: one server's mark says
 * nothing of the numbers another leased above it, so the source must be set above every
 * server's mark (and above what it held before it went back, which covers servers since
 * stopped). Setting it to one server's mark alone repeated 7,254 numbers in a review.
 */
export class LeaseBehindError extends Error {
  override name = "LeaseBehindError";
  /** This server's mark when the lease was refused. */
  readonly mark: number;
  /** Whether it was seen by watching the source rather than by a lease. */
  readonly watched: boolean;

  /**
   * @param source The source's description (it names the Redis key or the file).
   * @param what What the source holds or granted, such as `the key holds 0`.
   * @param mark This server's mark: the highest number it knows was leased from the source.
   * @param options How it was seen.
   */
  constructor(source: string, what: string, mark: number, options: LeaseBehindOptions = {}) {
    const watched = options.watched ?? false;
    super(
      (watched ? `${source} went backwards: ` : `refused a lease from ${source}: `) +
        `${what}, but this server's mark is ${mark} (numbers up to it were leased there, by ` +
        `this server or as it read the source); ` +
        (watched
          ? "a server leasing from it now repeats numbers, and this one leases nothing at or " +
            "below its mark (it serves on from the numbers it holds). "
          : "serving it would repeat numbers. ") +
        `To resume, set the source to at least the highest mark of every server that shares ` +
        `it (each logs its own; GET /v1/info shows it as numbers.mark) and at least what it ` +
        `held before it went back`,
    );
    this.mark = mark;
    this.watched = watched;
  }
}
