/**
 * Where a JSON text first goes wrong, as a line and column and what was expected there.
 *
 * `JSON.parse` says this differently on each runtime, and JavaScriptCore (Bun 1.4.5) gives no
 * position at all ("JSON Parse error: Property name must be a string literal"), so a config file
 * with a trailing comma would be refused without saying where. This walks the text the way the
 * grammar does (RFC 8259) only after `JSON.parse` has refused it.
 *
 * @module
 */

/** Where a JSON text goes wrong. */
export interface JsonErrorPosition {
  /** 1-based line. */
  line: number;
  /** 1-based column, in UTF-16 code units. */
  column: number;
  /** What is wrong there, e.g. `a trailing comma before '}'`. */
  problem: string;
}

class Stop {
  constructor(readonly at: number, readonly problem: string) {}
}

/**
 * Finds the first place where `text` is not JSON.
 *
 * @param text The text `JSON.parse` refused.
 * @returns Its line, column and problem, or null if it is valid JSON after all.
 */
export function jsonErrorPosition(text: string): JsonErrorPosition | null {
  let i = 0;
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const shown = () => i >= text.length ? "the end of the file" : `'${text[i]}'`;
  const expect = (what: string): never => {
    throw new Stop(i, `expected ${what}, found ${shown()}`);
  };
  const string = () => {
    if (text[i] === "'") throw new Stop(i, "a string in single quotes (JSON needs double quotes)");
    if (text[i] !== '"') expect("a string in double quotes");
    i++;
    while (i < text.length && text[i] !== '"') {
      const c = text.charCodeAt(i);
      if (c < 0x20) {
        throw new Stop(i, "a control character in a string (write it as \\n, \\t, ...)");
      }
      if (text[i] === "\\") {
        i++;
        if (text[i] === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) {
            throw new Stop(i, "a \\u escape needs 4 hex digits");
          }
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? "")) {
          throw new Stop(i, `an unknown escape '\\${text[i] ?? ""}'`);
        }
      }
      i++;
    }
    if (i >= text.length) throw new Stop(i, "a string that never ends (a missing '\"')");
    i++;
  };
  const value = (): void => {
    space();
    const c = text[i];
    if (c === "{") {
      i++;
      space();
      if (text[i] === "}") return void i++;
      for (;;) {
        space();
        if (text[i] === "}") throw new Stop(i, "a trailing comma before '}'");
        string();
        space();
        if (text[i] !== ":") expect("':' after the key");
        i++;
        value();
        space();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") return void i++;
        expect("',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      space();
      if (text[i] === "]") return void i++;
      for (;;) {
        space();
        if (text[i] === "]") throw new Stop(i, "a trailing comma before ']'");
        value();
        space();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") return void i++;
        expect("',' or ']'");
      }
    }
    if (c === '"') return string();
    const literal = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(
      text.slice(i),
    );
    if (literal) {
      i += literal[0].length;
      return;
    }
    if (c === "'") throw new Stop(i, "a string in single quotes (JSON needs double quotes)");
    expect("a value");
  };
  try {
    value();
    space();
    if (i < text.length) expect("the end of the file");
    return null;
  } catch (error) {
    if (!(error instanceof Stop)) throw error;
    const before = text.slice(0, error.at).split("\n");
    return {
      line: before.length,
      column: before[before.length - 1]!.length + 1,
      problem: error.problem,
    };
  }
}
