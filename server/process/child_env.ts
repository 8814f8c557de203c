/**
 * The environment a serving child process starts with: the supervisor's, less the secrets only
 * the supervisor uses. Children lease through the supervisor and serve no admin API, so they need
 * neither the Redis password nor the admin token, and a child's environment is readable by more
 * than the supervisor's memory is (`/proc/PID/environ`, a core dump, anything it runs).
 *
 * @module
 */

import { PASSWORD_ENV } from "../lease/sources/redis/redis_password.ts";

/**
 * The variables children never get. `TALLYHO_ADMIN_TOKEN` is admin/token.ts's `TOKEN_ENV`,
 * spelled out here because server/ never imports from admin/ (a test keeps the two equal).
 */
export const CHILD_SECRET_ENV: readonly string[] = [PASSWORD_ENV, "TALLYHO_ADMIN_TOKEN"];

/**
 * The environment for a child.
 *
 * @param env The supervisor's environment.
 * @returns A copy without {@linkcode CHILD_SECRET_ENV}.
 */
export function childEnvironment(
  env: Record<string, string | undefined>,
): Record<string, string> {
  const copy: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && !CHILD_SECRET_ENV.includes(name)) copy[name] = value;
  }
  return copy;
}
