/**
 * What each configuration key accepts, for `GET /v1/config/schema`: its type, its bounds or
 * choices, and whether a running server can change it. Everything is read from the option table
 * (`server/config/option_table.ts`), so a bound changed there changes here, and the dashboard
 * never holds a copy.
 *
 * @module
 */

import { type OptionType, SERVER_OPTION_ENTRIES } from "../server/config/option_table.ts";

/** What a key's values are. */
export type KeyType =
  /** An integer from `min` to `max`. */
  | { type: "integer"; min: number; max: number }
  /** A duration such as `10s` or `500ms`, from `min` to `max` milliseconds. */
  | { type: "duration"; min: number; max: number; unit: "ms" }
  /** One of `choices`. */
  | { type: "choice"; choices: readonly string[] }
  /** Text of at most `maxBytes` UTF-8 bytes (no limit when absent), without line breaks. */
  | { type: "string"; maxBytes?: number }
  /** true or false. */
  | { type: "boolean" }
  /** A list of CIDR ranges (IPv4 or IPv6). */
  | { type: "cidr-list" }
  /** A file path, or null for none. */
  | { type: "path"; nullable: true };

/** One key's schema; `live` is false for the keys only a restart changes. */
export type KeySchema = KeyType & { live: boolean };

/** The body of `GET /v1/config/schema`. */
export interface ConfigSchema {
  /** Every configuration key by its flag name, in the order `tallyho --help` lists them. */
  keys: Record<string, KeySchema>;
}

function keyType(type: OptionType): KeyType {
  switch (type.kind) {
    case "integer":
      return { type: "integer", min: type.min, max: type.max };
    case "duration":
      return { type: "duration", min: type.min, max: type.max, unit: "ms" };
    case "choice":
      return { type: "choice", choices: type.choices };
    case "string":
      return type.maxBytes === undefined
        ? { type: "string" }
        : { type: "string", maxBytes: type.maxBytes };
    case "boolean":
      return { type: "boolean" };
    case "cidr-list":
      return { type: "cidr-list" };
    case "path":
    // A redis:// or etcd:// URL is shown and set like a path (text, or null for none).
    case "url":
      return { type: "path", nullable: true };
  }
}

/**
 * Builds the configuration schema.
 *
 * @returns Every key's type, bounds or choices, and whether it is live.
 *
 * @example
 * ```ts
 * configSchema().keys["max-line-bytes"]; // { type: "integer", min: 1, max: 67108864, live: true }
 * ```
 */
export function configSchema(): ConfigSchema {
  const keys: Record<string, KeySchema> = {};
  for (const [, entry] of SERVER_OPTION_ENTRIES) {
    keys[entry.flag] = { ...keyType(entry.type), live: entry.change === "live" };
  }
  return { keys };
}
