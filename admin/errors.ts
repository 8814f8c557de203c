/**
 * The errors a backend throws that the admin API answers with their own status. Configuration
 * errors are the server's own (server/common/config_error.ts: `ConfigShapeError` 400, `ConfigError` 422,
 * `RestartRequiredError` 409, `StaleGenerationError` 412); a `TypeError` or `RangeError` is a bug
 * and answers 500.
 *
 * @module
 */

export {
  ConfigError,
  ConfigShapeError,
  RestartRequiredError,
  StaleGenerationError,
} from "../server/common/config_error.ts";

/** An action the listener's state does not allow, such as resuming while draining: 409. */
export class StateConflictError extends Error {
  override name = "StateConflictError";
}
