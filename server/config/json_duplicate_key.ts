/**
 * Finds a key given twice in one JSON object (`{"port": 1, "port": 2}`): `JSON.parse` keeps the
 * last without a word, so a config file that sets a key twice would silently use the one the
 * operator may not have meant.
 *
 * @module
 */

/** A key given twice, and where its second one is. */
export interface JsonDuplicateKey {
  /** The key. */
  key: string;
  /** 1-based line of its second occurrence. */
  line: number;
  /** 1-based column, in UTF-16 code units. */
  column: number;
}

/**
 * Finds the first key given twice in one object of `text`, which must be valid JSON (what
 * `JSON.parse` took).
 *
 * @param text Valid JSON.
 * @returns The key and where it is given again, or null when every object's keys differ.
 */
export function jsonDuplicateKey(text: string): JsonDuplicateKey | null {
  // One entry per open object or array: an object's keys so far, or null for an array.
  const open: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "{") {
      open.push(new Set());
      expectKey = true;
    } else if (c === "[") {
      open.push(null);
      expectKey = false;
    } else if (c === "}" || c === "]") {
      open.pop();
      expectKey = false;
    } else if (c === ",") {
      expectKey = open.at(-1) instanceof Set;
    } else if (c === '"') {
      const start = i;
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      if (expectKey) {
        const key = JSON.parse(text.slice(start, end + 1)) as string;
        const keys = open.at(-1) as Set<string>;
        if (keys.has(key)) {
          const before = text.slice(0, start);
          const line = before.split("\n").length;
          return { key, line, column: start - before.lastIndexOf("\n") };
        }
        keys.add(key);
        expectKey = false;
      }
      i = end;
    }
  }
  return null;
}
