/**
 * How often a serving child reports its figures to the supervisor, and the test-only knob that
 * makes it report more often.
 *
 * The knob is read from the environment, like the planted block (server/threads/_planted_block.ts) and
 * for the same reasons: it is no setting an operator should find in `--help`, the config file or
 * the admin API, and the name says what it is to anyone who finds it in a process's environment.
 * Tests set it so that they wait for a report instead of out a second.
 *
 * @module
 */

/** How often a child reports its figures to the supervisor. */
export const STATS_EVERY_MS = 1000;

/** The variable: report every this many ms instead (a whole number from 10 to 1000). */
export const STATS_EVERY_ENV = "TALLYHO_TEST_ONLY_STATS_EVERY_MS";

/**
 * How often this child reports: {@linkcode STATS_EVERY_MS}, or what {@linkcode STATS_EVERY_ENV}
 * asks for when it is a whole number of ms from 10 to that.
 *
 * @param env The process's environment.
 * @returns Milliseconds.
 */
export function statsEveryMs(env: Record<string, string | undefined>): number {
  const asked = Number(env[STATS_EVERY_ENV]);
  return Number.isInteger(asked) && asked >= 10 && asked <= STATS_EVERY_MS ? asked : STATS_EVERY_MS;
}
