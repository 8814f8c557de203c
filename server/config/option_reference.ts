/**
 * The reference table of docs/configuration.md ("Keys: defaults, bounds, live or restart"),
 * derived from the option table; tests/docs_test.ts fails while the docs hold another.
 *
 * @module
 */

import { OPTION_ENTRIES } from "./option_table.ts";

/**
 * The reference table as Markdown, padded the way `deno fmt` pads a table.
 *
 * @returns The table's lines, joined, without a final line break.
 */
export function optionReferenceTable(): string {
  const rows: string[][] = [];
  for (const [, entry] of OPTION_ENTRIES) {
    if (entry.docs === null) continue;
    const previous = rows[rows.length - 1];
    if (entry.docs === "with previous" && previous !== undefined) {
      previous[0] += `, \`${entry.flag}\``;
      continue;
    }
    if (entry.docs === "with previous") throw new TypeError(`${entry.flag} has no row before it`);
    rows.push([`\`${entry.flag}\``, entry.docs.default, entry.docs.bounds, entry.change]);
  }
  const header = ["key", "default", "bounds", "change"];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]!.length))
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join(" | ")} |`;
  return [
    line(header),
    line(widths.map((width) => "-".repeat(width))),
    ...rows.map(line),
  ].join("\n");
}
