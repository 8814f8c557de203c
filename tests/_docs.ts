/**
 * Test fixture: reading the Markdown docs the way a reader does, so tests can hold the docs to
 * the program: the fenced block under a marker comment, the links, the headings' anchors.
 *
 * @module
 */

import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./_server.ts";

/** The Markdown files a reader is sent to: the README, CONTRIBUTING, docs/ and the bench notes. */
export function docFiles(root: string = ROOT): string[] {
  const files = ["README.md", "CONTRIBUTING.md", "bench/README.md"];
  for (const name of readdirSync(join(root, "docs")).sort()) {
    if (name.endsWith(".md")) files.push(`docs/${name}`);
  }
  return files.filter((file) => existsSync(join(root, file)));
}

/** Lines with fenced code blocks blanked out, so links and headings inside code are not read. */
function proseLines(markdown: string): string[] {
  let fence: string | null = null;
  return markdown.split("\n").map((line) => {
    const match = /^\s*(`{3,}|~{3,})/.exec(line);
    if (match) {
      if (fence === null) fence = match[1]!;
      else if (match[1]!.startsWith(fence)) fence = null;
      return "";
    }
    return fence === null ? line : "";
  });
}

/**
 * The content of the first fenced block after `<!-- marker -->`.
 *
 * @param markdown The document.
 * @param marker The comment's text, e.g. `quick-start:start`.
 * @returns The block's lines joined with `\n`, without the fences.
 * @throws {Error} When the marker or its block is missing.
 */
export function blockAfter(markdown: string, marker: string): string {
  const at = markdown.indexOf(`<!-- ${marker} -->`);
  if (at < 0) throw new Error(`no <!-- ${marker} --> marker`);
  const match = /^(`{3,})[^\n]*\n([\s\S]*?)\n\1\s*$/m.exec(markdown.slice(at));
  if (!match) throw new Error(`no fenced block after <!-- ${marker} -->`);
  return match[2]!;
}

/** A link found in a document: its target as written and the line it is on. */
export interface DocLink {
  target: string;
  line: number;
}

/**
 * Every link and image target in a document's prose (not in code blocks or code spans).
 *
 * @param markdown The document.
 * @returns The targets, in order.
 */
export function links(markdown: string): DocLink[] {
  const found: DocLink[] = [];
  proseLines(markdown).forEach((line, index) => {
    const text = line.replace(/`[^`]*`/g, "");
    for (const match of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      found.push({ target: match[1]!, line: index + 1 });
    }
  });
  return found;
}

/**
 * The anchors GitHub gives a document's headings: lower case, punctuation dropped, spaces as
 * hyphens, and `-1`, `-2` ... on repeats.
 *
 * @param markdown The document.
 * @returns The anchors.
 */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const line of proseLines(markdown)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const slug = heading[1]!.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    result.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return result;
}

/**
 * The command lines of a document's `sh` and `bash` blocks: no comments, no continuation lines.
 *
 * @param markdown The document.
 * @returns Each command as written, with its line number.
 */
export function shellCommands(markdown: string): DocLink[] {
  const commands: DocLink[] = [];
  let inShell = false;
  let inFence = false;
  let continued = false;
  markdown.split("\n").forEach((line, index) => {
    const fence = /^\s*```(\w*)/.exec(line);
    if (fence) {
      inFence = !inFence;
      inShell = inFence && (fence[1] === "sh" || fence[1] === "bash");
      continued = false;
      return;
    }
    if (!inShell) return;
    const wasContinued = continued;
    continued = line.trimEnd().endsWith("\\");
    if (wasContinued || line.trim() === "" || line.trim().startsWith("#")) return;
    commands.push({ target: line.trim(), line: index + 1 });
  });
  return commands;
}
