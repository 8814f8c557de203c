/**
 * How a value someone gave is written in an error message.
 *
 * @module
 */

import { escapeUnprintable } from "./printable.ts";

/**
 * Describes a value for an error message: strings quoted, everything else as JSON.
 *
 * @param value Anything a user gave.
 * @returns A short printable form.
 *
 * @example
 * ```ts
 * describe("70000"); // '"70000"'
 * describe(undefined); // "nothing"
 * ```
 */
export function describe(value: unknown): string {
  if (typeof value === "string") return escapeUnprintable(JSON.stringify(value));
  if (typeof value === "number" || typeof value === "boolean" || value === null) {
    return String(value);
  }
  if (value === undefined) return "nothing";
  const text = escapeUnprintable(JSON.stringify(value) ?? String(value));
  return text.length > 60 ? text.slice(0, 57) + "..." : text;
}
