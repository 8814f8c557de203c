/**
 * The error a lease fails with when the number source went backwards: it would hand this server
 * numbers it has already leased. In a module of its own so the supervisor and the Redis source
 * can name it without loading each other.
 *
 * @module
 */

/**
 * A lease refused because it would start at or below the highest number this server has already
 * leased: the source went backwards (a Redis key overwritten or lost, a state file replaced).
 * The run is never served.
 */
export class LeaseBehindError extends Error {
  override name = "LeaseBehindError";
  /** The highest number this server had leased when the lease was refused. */
  readonly mark: number;

  /**
   * @param source The source's description (it names the Redis key or the file).
   * @param what What the source holds or granted, such as `the key holds 0`.
   * @param mark The highest number this server has already leased.
   */
  constructor(source: string, what: string, mark: number) {
    super(
      `refused a lease from ${source}: ${what}, but this server has already leased numbers up ` +
        `to ${mark}; serving it would repeat numbers. Set the source to at least ${mark} ` +
        `(above every server's leases) to resume`,
    );
    this.mark = mark;
  }
}
