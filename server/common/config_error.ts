/**
 * The errors a configuration can be refused with, wherever it comes from: the command line, the
 * `--config` file, SIGHUP or the admin API. Each names the key as the operator writes it, so the
 * CLI prints one line (exit 2) and the admin API answers with the field (400 or 422). A
 * `TypeError` or `RangeError` is never one of these: it is a bug, and is reported as one.
 *
 * @module
 */

/** A value the key does not accept: out of bounds, of the wrong type, or not parsable. */
export class ConfigError extends Error {
  override name = "ConfigError";
  /** The key, by its flag name (`max-connections`), or undefined for the whole document. */
  readonly field: string | undefined;

  /**
   * @param field The key, by its flag name.
   * @param message What was wrong, what was given and what to do.
   */
  constructor(field: string | undefined, message: string) {
    super(message);
    this.field = field;
  }
}

/** A configuration that is not an object, or names a key tallyho does not have. */
export class ConfigShapeError extends ConfigError {
  override name = "ConfigShapeError";
}

/** A change to a key that only takes effect on a restart (`host`, `port`, `first-number`). */
export class RestartRequiredError extends ConfigError {
  override name = "RestartRequiredError";
}

/** A change based on a generation that is no longer the one in force (a stale `If-Match`). */
export class StaleGenerationError extends Error {
  override name = "StaleGenerationError";
}
