/**
 * One short line from an error, for reports that carry on past it.
 *
 * @module
 */

/**
 * The error's message, led by its code (`ENOENT`, `EACCES`) when the message does not already
 * name it.
 *
 * @param error Anything thrown.
 * @returns One line.
 */
export function errorReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = String((error as Error | null)?.message ?? error).split("\n")[0]!;
  return typeof code === "string" && !message.includes(code) ? `${code}: ${message}` : message;
}
