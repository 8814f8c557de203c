/**
 * The error a serving process's failed start gives its supervisor's start.
 *
 * @module
 */

/**
 * A serving process could not start (it could not lease its first block, a TLS file could not be
 * read, ...): the cause is outside tallyho, said in one line, not a bug.
 */
export class ProcessStartError extends Error {
  override name = "ProcessStartError";
}
