/**
 * What a `PATCH /v1/config` body asks for: a JSON merge patch (RFC 7396) over the configuration in
 * force, turned into the options the server's one planner (`planConfig`, through the
 * `ConfigKeeper`) validates, clamps and diffs, exactly as it does the command line and the
 * `--config` file.
 *
 * @module
 */

import { describe } from "../server/common/describe.ts";
import { FLAG_NAMES, RESTART_KEYS as RESTART_OPTIONS } from "../server/config/resolve_config.ts";
import { ConfigShapeError } from "../server/common/config_error.ts";
import { configToJson, optionsFromJson, unknownKeyError } from "../server/config/config_json.ts";
import type { ConfigOutcome, ConfigRequest } from "../server/config/config_keeper.ts";
import type { ConfigChange } from "./backend.ts";
import { applyMergePatch } from "./merge_patch.ts";

/**
 * Keys that a running server cannot change, by their flag names: the listeners would have to be
 * bound again (`host`, `port`) or the number source reopened (`first-number`, `state`). The list
 * is the server's own (`RESTART_KEYS` in server/config/resolve_config.ts); every other key is live.
 */
export const RESTART_KEYS: readonly string[] = RESTART_OPTIONS.map((key) => FLAG_NAMES[key]);

/** How a refusal names a patch as the one asking. */
export const PATCH_ORIGIN = "the patch";

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Turns a merge patch into a configuration request. A top-level `null` puts that key back to its
 * default; setting a restart-only key to the value it already has is allowed, so a client may
 * send back the whole document it read.
 *
 * @param patch The parsed request body.
 * @returns The request, built on the configuration in force when it runs.
 * @throws {ConfigShapeError} When the patch is not an object or names an unknown key.
 */
export function patchRequest(patch: unknown): ConfigRequest {
  if (!isObject(patch)) {
    throw new ConfigShapeError(
      undefined,
      `A configuration patch must be a JSON object: got ${describe(patch)}`,
    );
  }
  const known = new Set(Object.values(FLAG_NAMES));
  for (const key of Object.keys(patch)) {
    // optionsFromJson rejects unknown keys, but a null one would vanish in the merge unseen.
    if (!known.has(key)) throw unknownKeyError(key);
  }
  // A null removes the key, and the planner fills what is missing from the defaults.
  return (current) => optionsFromJson(applyMergePatch(configToJson(current), patch));
}

/**
 * A keeper's outcome as the admin API reports it.
 *
 * @param change What the keeper planned or applied.
 * @returns The generation, the configuration as JSON, the changes and the clamp warnings.
 */
export function outcome(change: ConfigOutcome): ConfigChange {
  return {
    generation: change.generation,
    config: change.json,
    changes: change.changes,
    warnings: change.warnings,
  };
}
