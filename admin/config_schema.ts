/**
 * What each configuration key accepts, for `GET /v1/config/schema`: its type, its bounds or
 * choices, and whether a running server can change it. Everything is read from
 * `server/config.ts` (`LIMITS`, `CHOICES`, `FLAG_NAMES`, `DURATION_KEYS`, `RESTART_KEYS`), so a
 * bound changed there changes here, and the dashboard never holds a copy.
 *
 * @module
 */

import {
  CHOICES,
  DURATION_KEYS,
  FLAG_NAMES,
  LIMITS,
  RESTART_KEYS,
  type ServeOptions,
} from "../server/config.ts";

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

type BoundedKey = keyof typeof LIMITS & keyof ServeOptions;
type ChoiceKey = keyof typeof CHOICES;

// The keys whose type is neither bounded by LIMITS nor a choice. Typed so that a key added to
// ServeOptions without bounds or choices fails to compile until it is described here.
const OTHER_KEYS: Record<
  Exclude<keyof ServeOptions, BoundedKey | ChoiceKey>,
  KeyType
> = {
  host: { type: "string" },
  greeting: { type: "string", maxBytes: LIMITS.greetingBytes.max },
  state: { type: "path", nullable: true },
  allow: { type: "cidr-list" },
  deny: { type: "cidr-list" },
  proxyProtocol: { type: "boolean" },
  proxyFrom: { type: "cidr-list" },
  tlsCert: { type: "path", nullable: true },
  tlsKey: { type: "path", nullable: true },
  // A redis:// URL; shown and set like a path (text, or null for none).
  numbers: { type: "path", nullable: true },
  numbersPasswordFile: { type: "path", nullable: true },
  numbersCaFile: { type: "path", nullable: true },
  numbersCertFile: { type: "path", nullable: true },
  numbersKeyFile: { type: "path", nullable: true },
};

function isBounded(option: keyof ServeOptions): option is BoundedKey {
  return Object.hasOwn(LIMITS, option);
}

function isChoice(option: keyof ServeOptions): option is ChoiceKey {
  return Object.hasOwn(CHOICES, option);
}

function keySchema(option: keyof ServeOptions): KeyType {
  if (isBounded(option)) {
    const { min, max } = LIMITS[option];
    return DURATION_KEYS.has(option)
      ? { type: "duration", min, max, unit: "ms" }
      : { type: "integer", min, max };
  }
  if (isChoice(option)) return { type: "choice", choices: CHOICES[option] };
  return OTHER_KEYS[option];
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
  for (const [option, flag] of Object.entries(FLAG_NAMES) as [keyof ServeOptions, string][]) {
    keys[flag] = { ...keySchema(option), live: !RESTART_KEYS.includes(option) };
  }
  return { keys };
}
