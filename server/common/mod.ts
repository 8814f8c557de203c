/**
 * What every part of tallyho shares and that depends on nothing of tallyho's: the one clock, the
 * largest number handed out, how a given value is written in an error, and which characters never
 * reach a terminal raw. A leaf: it imports no other module of the repository, so anything may
 * import it without closing a cycle.
 *
 * @module
 */

export * from "./clock.ts";
export * from "./describe.ts";
export * from "./file_error.ts";
export * from "./max_number.ts";
export * from "./printable.ts";
