/**
 * The errors a backend throws that the admin API answers with their own status. Wrong shapes and
 * out-of-range values stay `TypeError` and `RangeError`, as everywhere in tallyho.
 *
 * @module
 */

/** A change to a key that only takes effect on a restart (`host`, `port`, `first-number`): 409. */
export class RestartRequiredError extends Error {
  override name = "RestartRequiredError";
  /** The key, by its flag name. */
  readonly field: string;

  /**
   * @param field The key, by its flag name.
   * @param message What was asked and why it cannot be done live.
   */
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

/** An `If-Match` generation that is no longer current: 412. */
export class StaleGenerationError extends Error {
  override name = "StaleGenerationError";
}

/** An action the listener's state does not allow, such as resuming while draining: 409. */
export class StateConflictError extends Error {
  override name = "StateConflictError";
}
