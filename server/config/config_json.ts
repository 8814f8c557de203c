/**
 * The configuration as JSON, for the `--config` file and the admin API. Keys are the flags'
 * names (`number-by`, `max-line-bytes`), so an operator uses one vocabulary everywhere, and
 * errors name the key as the operator wrote it.
 *
 * @module
 */

import { fileErrorReason } from "../common/file_error.ts";
import { jsonDuplicateKey } from "./json_duplicate_key.ts";
import { readRegularFile, RegularFileError } from "../host/regular_file.ts";
import { describe } from "../common/describe.ts";
import {
  DURATION_KEYS,
  FLAG_NAMES,
  LIMITS,
  type ServeConfig,
  type ServeOptions,
} from "./resolve_config.ts";
import { ConfigError, ConfigShapeError } from "../common/config_error.ts";
import { didYouMean } from "./did_you_mean.ts";
import { jsonErrorPosition } from "./json_error_position.ts";

/** A configuration file that cannot be read or parsed; the message names the file. */
export class ConfigFileError extends Error {
  override name = "ConfigFileError";
  /** The file. */
  readonly file: string | undefined;
  /** The key whose value is wrong, by its flag name; undefined when the file as a whole is. */
  readonly field: string | undefined;

  /**
   * @param message What was wrong, naming the file.
   * @param where The file, and the key when one value is what is wrong.
   */
  constructor(message: string, where: { file?: string; field?: string | undefined } = {}) {
    super(message);
    this.file = where.file;
    this.field = where.field;
  }
}

/** The most bytes a `--config` file may hold. */
export const CONFIG_FILE_MAX_BYTES = 1024 * 1024;

/**
 * Reads a `--config` file that may also hold keys the server's options do not have but the
 * command line does (`admin`, `admin-token-file`), so the file takes every key a flag takes.
 *
 * @param path The file.
 * @param extraKeys The keys to hand back as they are, beside the options.
 * @returns The options, and the extra keys that the file sets.
 * @throws {ConfigFileError} When it cannot be read, is not JSON (naming the line and column),
 *   or holds a bad key or value.
 */
export function readConfigFileWith(
  path: string,
  extraKeys: readonly string[],
): { options: ServeOptions; extra: Record<string, unknown> } {
  let text: string;
  try {
    // A regular file of bounded size: SIGHUP re-reads it in the supervisor, which a FIFO or a
    // device named here would block or fill (server/host/regular_file.ts).
    text = new TextDecoder().decode(readRegularFile(path, CONFIG_FILE_MAX_BYTES));
  } catch (error) {
    const reason = error instanceof RegularFileError ? error.message : fileErrorReason(error);
    throw new ConfigFileError(`Cannot read config file ${path}: ${reason}`, { file: path });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const at = jsonErrorPosition(text);
    throw new ConfigFileError(
      at === null
        ? `Config file ${path} is not valid JSON: ${(error as Error).message}`
        : `Config file ${path} is not valid JSON at line ${at.line}, column ${at.column}: ` +
          at.problem,
      { file: path },
    );
  }
  const twice = jsonDuplicateKey(text);
  if (twice !== null) {
    throw new ConfigFileError(
      `Config file ${path} gives '${twice.key}' twice (again at line ${twice.line}, column ` +
        `${twice.column}): keep one`,
      { file: path, field: twice.key },
    );
  }
  const extra: Record<string, unknown> = {};
  if (typeof json === "object" && json !== null && !Array.isArray(json)) {
    const rest: Record<string, unknown> = { ...json };
    for (const key of extraKeys) {
      if (Object.hasOwn(rest, key)) {
        extra[key] = rest[key];
        delete rest[key];
      }
    }
    json = rest;
  }
  try {
    return { options: optionsFromJson(json, extraKeys), extra };
  } catch (error) {
    throw new ConfigFileError(`Config file ${path}: ${(error as Error).message}`, {
      file: path,
      field: error instanceof ConfigError ? error.field : undefined,
    });
  }
}

const OPTION_BY_FLAG = new Map(
  Object.entries(FLAG_NAMES).map(([option, flag]) => [flag, option as keyof ServeOptions]),
);

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A duration limit the way an operator writes one: the largest whole unit (`1h`, `24h`, `10s`).
 *
 * @param ms Milliseconds.
 * @returns `"1h"`, `"5m"`, `"10s"` or `"250ms"`.
 */
export function durationText(ms: number): string {
  for (const unit of ["h", "m", "s"] as const) {
    if (ms !== 0 && ms % UNIT_MS[unit]! === 0) return `${ms / UNIT_MS[unit]!}${unit}`;
  }
  return ms === 0 ? "0s" : `${ms}ms`;
}

/**
 * Parses a duration: `"500ms"`, `"10s"`, `"1.5s"`, `"5m"`, `"1h"`, or a number of seconds.
 * With `bounds`, a value outside them is refused echoing the value as it was given, never the
 * milliseconds it was turned into.
 *
 * @param flag The key or flag it came from, for the error.
 * @param value What was given.
 * @param bounds The least and most milliseconds allowed.
 * @returns Milliseconds.
 * @throws {ConfigError} When it is not a duration, or is out of bounds.
 */
export function parseDuration(
  flag: string,
  value: unknown,
  bounds?: { min: number; max: number },
): number {
  let ms = Number.NaN;
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) {
    ms = Math.round(value * 1000);
  } else if (typeof value === "string") {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
    if (match) ms = Math.round(Number(match[1]) * UNIT_MS[match[2] ?? "s"]!);
  }
  const range = bounds === undefined
    ? ""
    : ` from ${durationText(bounds.min)} to ${durationText(bounds.max)}`;
  const unitless = typeof value === "number" || /^\s*[\d.]+\s*$/.test(String(value));
  if (Number.isNaN(ms) || (bounds !== undefined && (ms < bounds.min || ms > bounds.max))) {
    throw new ConfigError(
      flag,
      `'${flag}' must be a duration${range} such as 500ms, 10s, 5m or 1h: got ${describe(value)}${
        unitless && !Number.isNaN(ms) ? " (a number without a unit is seconds)" : ""
      }`,
    );
  }
  return ms;
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
 * The error for a configuration key that does not exist, with the key meant when one is close
 * (`maxConnections`: did you mean `max-connections`?).
 *
 * @param key The key as given.
 * @param alsoKnown Keys a caller reads itself, offered beside the options'.
 * @returns A {@linkcode ConfigShapeError} naming the key.
 */
export function unknownKeyError(key: string, alsoKnown: readonly string[] = []): ConfigShapeError {
  const near = didYouMean(key, [...OPTION_BY_FLAG.keys(), ...alsoKnown]);
  return new ConfigShapeError(
    key,
    `Unknown configuration key '${key}'${near === null ? "" : ` (did you mean '${near}'?)`}`,
  );
}

/**
 * Turns a JSON object with flag-named keys into options. Values keep their JSON types
 * (numbers stay numbers); `resolveConfig` then checks their ranges.
 *
 * @param json A parsed JSON value.
 * @param alsoKnown Keys a caller reads itself, offered in a "did you mean" beside the options'.
 * @returns The options it sets.
 * @throws {ConfigShapeError} When it is not an object or names an unknown key.
 * @throws {ConfigError} When a duration cannot be read.
 */
export function optionsFromJson(json: unknown, alsoKnown: readonly string[] = []): ServeOptions {
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
      throw unknownKeyError(key, alsoKnown);
    }
    options[option] = DURATION_KEYS.has(option)
      ? parseDuration(key, value, LIMITS[option as keyof typeof LIMITS])
      : value;
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
