/**
 * The runtimes tallyho runs on.
 *
 * @module
 */

/** A runtime tallyho runs on; `RUNTIME` in adapters/mod.ts says which one this process is on. */
export type Runtime = "bun" | "deno";
