/**
 * The hidden command a `tallyho load --hold` client process runs (`tallyho _hold PLAN`), in a
 * module of its own that imports nothing, so the program's entry can see it before it loads
 * anything else (cli/run_program.ts).
 *
 * @module
 */

/** The hidden command a client process runs. */
export const HOLD_CHILD_COMMAND = "_hold";
