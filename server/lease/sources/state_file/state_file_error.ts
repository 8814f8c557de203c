/**
 * The error a state file fails with, in a module of its own so the lock, the directory check and
 * the CLI can share it.
 *
 * @module
 */

/** The state file cannot be used; the message names the file and the problem. */
export class StateFileError extends Error {
  override name = "StateFileError";
}
