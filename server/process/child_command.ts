/**
 * The internal command a serving child runs (`tallyho _child`), in a module of its own that
 * imports nothing, so the program's entry can see it before it loads anything else
 * (cli/run_program.ts).
 *
 * @module
 */

/** The internal command a child runs; not for people. */
export const CHILD_COMMAND = "_child";
