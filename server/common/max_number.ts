/**
 * The largest number tallyho hands out.
 *
 * @module
 */

/** Largest number tallyho hands out: beyond it a JavaScript number is no longer exact. */
export const MAX_NUMBER = Number.MAX_SAFE_INTEGER;
