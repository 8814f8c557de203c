/**
 * The open-file limit (RLIMIT_NOFILE) as `/proc/<pid>/limits` states it. Every connection is one
 * descriptor, so this limit is how many clients a process can hold at once: the connection cap's
 * default derives from it, and `tallyho doctor` reports it.
 *
 * @module
 */

/** The two open-file limits; `Infinity` stands for `unlimited`. */
export interface OpenFileLimit {
  soft: number;
  hard: number;
}

/**
 * Finds the `Max open files` row of a `/proc/<pid>/limits` text.
 *
 * @param text The file's content.
 * @returns The soft and hard limits.
 * @throws {RangeError} When the row is missing or its values are not numbers or `unlimited`.
 */
export function parseOpenFileLimit(text: string): OpenFileLimit {
  const row = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!row) {
    throw new RangeError(
      `Cannot find 'Max open files' in the limits file: got ${JSON.stringify(text.slice(0, 60))}`,
    );
  }
  return { soft: limitValue(row[1]!), hard: limitValue(row[2]!) };
}

function limitValue(text: string): number {
  if (text === "unlimited") return Infinity;
  if (!/^\d+$/.test(text)) {
    throw new RangeError(
      `'Max open files' must be a number or unlimited: got ${JSON.stringify(text)}`,
    );
  }
  return Number(text);
}
