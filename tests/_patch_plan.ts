/**
 * A `PATCH /v1/config` body planned against a configuration without a server: the rules the
 * admin API applies (a running server plans through its `ConfigKeeper`, which also clamps to the
 * host). For the unit tests of those rules.
 */
import { PATCH_ORIGIN, patchRequest } from "../admin/patch_request.ts";
import type { ServeConfig } from "../server/config/resolve_config.ts";
import { type ConfigPlan, planConfig } from "../server/config/config_plan.ts";

/**
 * @param current The configuration in force.
 * @param patch The parsed request body.
 * @param defaults The configuration a key returns to when the patch sets it to `null`.
 * @returns The configuration the patch gives and what changes.
 */
export function planConfigChange(
  current: ServeConfig,
  patch: unknown,
  defaults: ServeConfig,
): ConfigPlan {
  return planConfig(patchRequest(patch)(current), { defaults, current, origin: PATCH_ORIGIN });
}
