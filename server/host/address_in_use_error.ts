/**
 * The error for an address another socket holds.
 *
 * @module
 */

/** Thrown by an adapter when the address is taken; the CLI reports it in one line. */
export class AddressInUseError extends Error {
  override name = "AddressInUseError";
}
