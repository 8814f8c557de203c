/**
 * bench/RESULTS.md is written by several benchmarks, each owning one section between markers:
 *
 *     <!-- section NAME -->
 *     ...generated text...
 *     <!-- /section NAME -->
 *
 * A benchmark replaces only its own section (appending it when absent) and leaves every other
 * section as it was, so rerunning one benchmark never drops another's figures.
 *
 * @module
 */

import { existsSync, readFileSync, writeFileSync } from "node:fs";

const TITLE = "# tallyho's measured figures\n\n" +
  "Each section below is written by the benchmark it names; do not edit a section by hand, rerun\n" +
  "its benchmark. Figures are from the machine and date each section states.\n";

function markers(name: string): [string, string] {
  if (!/^[a-z0-9-]+$/.test(name)) {
    throw new Error(`section name must be lowercase letters, digits and '-'; got '${name}'`);
  }
  return [`<!-- section ${name} -->`, `<!-- /section ${name} -->`];
}

/** The text of the file with section `name` set to `body` (replaced in place, or appended). */
export function withSection(file: string, name: string, body: string): string {
  const [open, close] = markers(name);
  const block = `${open}\n${body.trim()}\n${close}`;
  const start = file.indexOf(open);
  if (start >= 0) {
    const end = file.indexOf(close, start);
    if (end < 0) throw new Error(`'${open}' has no closing '${close}'`);
    return file.slice(0, start) + block + file.slice(end + close.length);
  }
  const base = file.trim() === "" ? TITLE : file.replace(/\s*$/, "\n");
  return `${base}\n${block}\n`;
}

/** The body of section `name` in `file`, or `null` when it has none. */
export function sectionOf(file: string, name: string): string | null {
  const [open, close] = markers(name);
  const start = file.indexOf(open);
  if (start < 0) return null;
  const end = file.indexOf(close, start);
  return end < 0 ? null : file.slice(start + open.length, end).trim();
}

/** Writes section `name` of the markdown file at `path` (created when missing). */
export function writeSection(path: string, name: string, body: string): void {
  const file = existsSync(path) ? readFileSync(path, "utf8") : "";
  writeFileSync(path, withSection(file, name, body));
}
