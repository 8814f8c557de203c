/**
 * JSON merge patch, RFC 7396.
 *
 * @module
 */

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Applies a JSON merge patch (RFC 7396, section 2): members of an object patch replace the
 * target's, `null` removes a member, objects merge recursively, anything else replaces the target
 * whole. Neither argument is modified.
 *
 * @param target The document to patch.
 * @param patch The merge patch.
 * @returns The patched document.
 *
 * @example
 * ```ts
 * applyMergePatch({ a: "b", c: { d: "e", f: "g" } }, { a: "z", c: { f: null } });
 * // { a: "z", c: { d: "e" } }
 * ```
 */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else {
      // Defined, not assigned: a member named "__proto__" (JSON.parse makes it an own property)
      // stays a member instead of replacing the result's prototype.
      Object.defineProperty(result, key, {
        value: applyMergePatch(Object.hasOwn(result, key) ? result[key] : undefined, value),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return result;
}
