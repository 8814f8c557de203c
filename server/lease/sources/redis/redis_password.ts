/**
 * Finds the Redis password: a file (`--numbers-password-file`) or the environment
 * (`TALLYHO_REDIS_PASSWORD`), never the command line, where any user of the host could read it.
 *
 * @module
 */

import { fileErrorReason } from "../../../common/file_error.ts";
import { readFileSync } from "node:fs";

/** The environment variable that may hold the Redis password. */
export const PASSWORD_ENV = "TALLYHO_REDIS_PASSWORD";

/** The password cannot be read; the message names the file or variable, never the password. */
export class RedisPasswordError extends Error {
  override name = "RedisPasswordError";
}

/**
 * Reads the password from a file or the environment.
 *
 * @param file The `--numbers-password-file`, or `null`.
 * @param env The environment to read {@linkcode PASSWORD_ENV} from.
 * @param service Whose password it is, for messages.
 * @returns The password, or `null` when neither gives one (Redis without `requirepass`).
 * @throws {RedisPasswordError} When both give one, the file cannot be read, or it is empty.
 */
export function readRedisPassword(
  file: string | null,
  env: Record<string, string | undefined>,
  service = "Redis",
): string | null {
  const fromEnv = env[PASSWORD_ENV];
  if (file === null) return fromEnv === undefined || fromEnv === "" ? null : fromEnv;
  if (fromEnv !== undefined && fromEnv !== "") {
    throw new RedisPasswordError(
      `The Redis password is given twice, in ${PASSWORD_ENV} and in --numbers-password-file ` +
        `${file}: give it one way`,
    );
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new RedisPasswordError(
      `Cannot read the ${service} password file ${file}: ${fileErrorReason(error)}`,
    );
  }
  // One trailing line break is what `echo secret > file` leaves; it is not part of the password.
  const password = text.replace(/\r?\n$/, "");
  if (password === "") {
    throw new RedisPasswordError(`The ${service} password file ${file} is empty`);
  }
  return password;
}
