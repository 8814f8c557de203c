/**
 * The configuration panel's data handling, with no DOM: a key's value as the text of its field,
 * its bounds in words, and the merge patch a form makes. Pure, so the tests import it.
 *
 * The panel checks nothing itself: a value it cannot read as its type is sent as typed, so the
 * server's own error (and its `field`) is what the operator sees.
 *
 * @module
 */

import type { ConfigSchema, KeySchema } from "../config_schema.ts";
import { formatCount, formatMs } from "./format.ts";

/**
 * A value as the text of its field: lists comma-separated, `null` empty.
 *
 * @param value A value from `GET /v1/config`.
 * @returns The text.
 */
export function fieldText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}

/**
 * What a key accepts, in words.
 *
 * @param schema The key's schema.
 * @returns For example `"1 to 67,108,864"` or `"0s to 86400s"`.
 */
export function boundsText(schema: KeySchema): string {
  switch (schema.type) {
    case "integer":
      return `${formatCount(schema.min)} to ${formatCount(schema.max)}`;
    case "duration":
      return `${formatMs(schema.min)} to ${formatMs(schema.max)}, such as 10s or 500ms`;
    case "choice":
      return schema.choices.join(" or ");
    case "string":
      return schema.maxBytes === undefined
        ? "text"
        : `at most ${formatCount(schema.maxBytes)} bytes, one line`;
    case "boolean":
      return "true or false";
    case "cidr-list":
      return "CIDR ranges, comma-separated; empty for none";
    case "path":
      return "a file path; empty for none";
  }
}

/**
 * Reads a field's text as its key's JSON value. Text that is not a whole number stays text for
 * an integer key, so the server answers with its own error.
 *
 * @param schema The key's schema.
 * @param text The field's text.
 * @returns The value to send.
 */
export function parseField(schema: KeySchema, text: string): unknown {
  switch (schema.type) {
    case "integer":
      return /^\s*[+-]?\d+\s*$/.test(text) ? Number(text) : text;
    case "duration":
      return text.trim();
    case "boolean": {
      // Anything else goes as typed, so the server names what was wrong.
      const word = text.trim();
      return word === "true" ? true : word === "false" ? false : text;
    }
    case "cidr-list":
      return text.split(/[\s,]+/).filter((item) => item.length > 0);
    case "path":
      return text.trim() === "" ? null : text;
    // Choices and text go as typed: a greeting's spaces are part of it.
    default:
      return text;
  }
}

/**
 * The merge patch a form makes: only the live keys whose value differs from the configuration
 * the form was filled from.
 *
 * @param schema `GET /v1/config/schema`.
 * @param config The configuration the form was filled from (`GET /v1/config`).
 * @param texts Each field's text, by key; keys left out are unchanged.
 * @returns The patch; empty when nothing changed.
 */
export function buildPatch(
  schema: ConfigSchema,
  config: Record<string, unknown>,
  texts: Record<string, string>,
): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  for (const [key, text] of Object.entries(texts)) {
    const keySchema = schema.keys[key];
    if (keySchema === undefined || !keySchema.live) continue;
    if (text === fieldText(config[key])) continue;
    const value = parseField(keySchema, text);
    if (JSON.stringify(value) !== JSON.stringify(config[key])) patch[key] = value;
  }
  return patch;
}

/**
 * Describes a change for a chart annotation or a status line.
 *
 * @param changes `changes` from a validate or apply answer.
 * @returns `"greeting "Hello World" → "Hi""`, or `"no change"`.
 */
export function describeChanges(changes: Record<string, { from: unknown; to: unknown }>): string {
  const parts = Object.entries(changes).map(([key, { from, to }]) =>
    `${key} ${JSON.stringify(from)} → ${JSON.stringify(to)}`
  );
  return parts.length === 0 ? "no change" : parts.join(", ");
}
