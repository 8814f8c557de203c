/**
 * The "did you mean" for a misspelt key or flag: `maxConnections` -> `max-connections`,
 * `idle-timout` -> `idle-timeout`.
 *
 * @module
 */

function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** `maxConnections`, `max_connections` and `MAX-CONNECTIONS` all read as `max-connections`. */
function kebab(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1-$2").replace(/_/g, "-").toLowerCase();
}

/**
 * The known name closest to `given`, when it is close enough to be what was meant.
 *
 * @param given What was typed.
 * @param known The names that exist.
 * @returns The suggestion, or null when none is close (at most 2 edits, after reading
 *   camelCase and snake_case as kebab-case).
 */
export function didYouMean(given: string, known: Iterable<string>): string | null {
  const wanted = kebab(given);
  let best: string | null = null;
  let bestDistance = 3;
  for (const name of known) {
    const d = distance(wanted, name);
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best;
}
