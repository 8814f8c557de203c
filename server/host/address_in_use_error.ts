/**
 * The error for an address another socket holds.
 *
 * @module
 */

/** Thrown by an adapter when the address is taken; the CLI reports it in one line. */
export class AddressInUseError extends Error {
  override name = "AddressInUseError";
  /** The option to change (`port`, `admin`), where the thrower knows it. */
  readonly key: string | undefined;

  /**
   * @param message What is taken, and what to do.
   * @param key The option to change, where known.
   */
  constructor(message: string, key?: string) {
    super(message);
    this.key = key;
  }
}
