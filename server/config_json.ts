/**
 * The configuration as JSON, for the `--config` file and the admin API. Keys are the flags'
 * names (`number-by`, `max-line-bytes`), so an operator uses one vocabulary everywhere, and
 * errors name the key as the operator wrote it.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import {
  describe,
  DURATION_KEYS,
  FLAG_NAMES,
  type ServeConfig,
  type ServeOptions,
} from "./config.ts";
import { ConfigError, ConfigShapeError } from "./config_error.ts";

/** A configuration file that cannot be read or parsed; the message names the file. */
export class ConfigFileError extends Error {
  override name = "ConfigFileError";
}

/**
 * Reads a `--config` file: a JSON object with the flags' names as keys.
 *
 * @param path The file.
 * @returns The options it sets.
 * @throws {ConfigFileError} When it cannot be read, is not JSON, or holds a bad key or value.
 */
export function readConfigFile(path: string): ServeOptions {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as { code?: string }).code ?? (error as Error).message;
    throw new ConfigFileError(`Cannot read config file ${path}: ${code}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigFileError(`Config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  try {
    return optionsFromJson(json);
  } catch (error) {
    throw new ConfigFileError(`Config file ${path}: ${(error as Error).message}`);
  }
}

const OPTION_BY_FLAG = new Map(
  Object.entries(FLAG_NAMES).map(([option, flag]) => [flag, option as keyof ServeOptions]),
);

/**
 * Parses a duration: `"10s"`, `"500ms"`, `"1.5s"`, or a number of seconds.
 *
 * @param flag The key or flag it came from, for the error.
 * @param value What was given.
 * @returns Milliseconds.
 * @throws {ConfigError} When it is not a duration.
 */
export function parseDuration(flag: string, value: unknown): number {
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) {
    return Math.round(value * 1000);
  }
  const match = typeof value === "string" ? /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(value) : null;
  if (!match) {
    throw new ConfigError(
      flag,
      `'${flag}' must be a duration such as 10s or 500ms: got ${describe(value)}`,
    );
  }
  const amount = Number(match[1]);
  return Math.round(match[2] === "ms" ? amount : amount * 1000);
}

/**
 * Formats milliseconds the way {@linkcode parseDuration} reads them back.
 *
 * @param ms Milliseconds.
 * @returns `"10s"` or `"250ms"`.
 */
export function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * Turns a JSON object with flag-named keys into options. Values keep their JSON types
 * (numbers stay numbers); `resolveConfig` then checks their ranges.
 *
 * @param json A parsed JSON value.
 * @returns The options it sets.
 * @throws {ConfigShapeError} When it is not an object or names an unknown key.
 * @throws {ConfigError} When a duration cannot be read.
 */
export function optionsFromJson(json: unknown): ServeOptions {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigShapeError(
      undefined,
      `Configuration must be a JSON object: got ${describe(json)}`,
    );
  }
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const option = OPTION_BY_FLAG.get(key);
    if (option === undefined) {
      throw new ConfigShapeError(key, `Unknown configuration key '${key}'`);
    }
    options[option] = DURATION_KEYS.has(option) ? parseDuration(key, value) : value;
  }
  return options as ServeOptions;
}

/**
 * The configuration as JSON with flag-named keys; the inverse of {@linkcode optionsFromJson}.
 *
 * @param config A resolved configuration.
 * @returns A plain object.
 */
export function configToJson(config: ServeConfig): Record<string, unknown> {
  const json: Record<string, unknown> = {};
  for (const [option, flag] of Object.entries(FLAG_NAMES)) {
    const value = config[option as keyof ServeConfig];
    json[flag] = DURATION_KEYS.has(option as keyof ServeConfig)
      ? formatDuration(value as number)
      : value;
  }
  return json;
}
