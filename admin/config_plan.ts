/**
 * The one place a configuration patch is checked: every backend's `validateConfig` and
 * `applyConfig` call {@linkcode planConfigChange}, which leans on the server's own
 * `optionsFromJson` and `resolveConfig`, so the admin API, the `--config` file and the command
 * line accept exactly the same values and word their errors the same way.
 *
 * @module
 */

import {
  describe,
  FLAG_NAMES,
  resolveConfig,
  RESTART_KEYS as RESTART_OPTIONS,
  type ServeConfig,
} from "../server/config.ts";
import { configToJson, optionsFromJson } from "../server/config_json.ts";
import type { ValueChange } from "./backend.ts";
import { RestartRequiredError } from "./errors.ts";
import { applyMergePatch } from "./merge_patch.ts";

/**
 * Keys that a running server cannot change, by their flag names: the listeners would have to be
 * bound again (`host`, `port`) or the number source reopened (`first-number`, `state`). The list
 * is the server's own (`RESTART_KEYS` in server/config.ts); every other key is live.
 */
export const RESTART_KEYS: readonly string[] = RESTART_OPTIONS.map((key) => FLAG_NAMES[key]);

/** What a patch would put in force. */
export interface ConfigPlan {
  /** The resolved configuration. */
  config: ServeConfig;
  /** The same as JSON with flag-named keys. */
  json: Record<string, unknown>;
  /** The keys whose values change. */
  changes: Record<string, ValueChange>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Checks a JSON merge patch (RFC 7396) against the configuration in force. A top-level `null`
 * puts that key back to its default. Setting a restart-only key to the value it already has is
 * allowed, so a client may send back the whole document it read.
 *
 * @param current The configuration in force.
 * @param patch The parsed request body.
 * @param defaults The configuration a key returns to when the patch sets it to `null`.
 * @returns The configuration the patch gives and what changes.
 * @throws {TypeError} When the patch is not an object or names an unknown key.
 * @throws {RangeError} When a value is out of its bounds; the message names the key.
 * @throws {RestartRequiredError} When a key in {@linkcode RESTART_KEYS} would change.
 *
 * @example
 * ```ts
 * const plan = planConfigChange(current, { greeting: "Hi", "max-line-bytes": null }, defaults);
 * plan.changes; // { greeting: { from: "Hello World", to: "Hi" }, ... }
 * ```
 */
export function planConfigChange(
  current: ServeConfig,
  patch: unknown,
  defaults: ServeConfig,
): ConfigPlan {
  if (!isObject(patch)) {
    throw new TypeError(`A configuration patch must be a JSON object: got ${describe(patch)}`);
  }
  const currentJson = configToJson(current);
  const defaultsJson = configToJson(defaults);
  for (const key of Object.keys(patch)) {
    // optionsFromJson rejects unknown keys, but a null one would vanish in the merge unseen.
    if (!Object.hasOwn(defaultsJson, key)) {
      throw new TypeError(`Unknown configuration key '${key}'`);
    }
  }
  // A null removes the key, and resolveConfig fills what is missing from the defaults.
  const merged = applyMergePatch(currentJson, patch);
  const config = resolveConfig(optionsFromJson(merged), defaults);
  const json = configToJson(config);
  const changes: Record<string, ValueChange> = {};
  for (const [key, to] of Object.entries(json)) {
    const from = currentJson[key];
    if (JSON.stringify(from) !== JSON.stringify(to)) changes[key] = { from, to };
  }
  for (const key of RESTART_KEYS) {
    const change = changes[key];
    if (change) {
      throw new RestartRequiredError(
        key,
        `'${key}' cannot change while the server runs; a restart is needed: it is ${
          describe(change.from)
        }, the patch asks for ${describe(change.to)}`,
      );
    }
  }
  return { config, json, changes };
}
