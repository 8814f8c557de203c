/**
 * The product's import graph, read from the source text: which modules importing a file loads,
 * and which value imports form cycles. `tests/layers_test.ts` holds the product to "no value
 * import cycle"; run it directly for the figures of issue 24's note:
 *
 *   bun bench/import_graph.ts                      # module counts of the files issue 24 names
 *   bun bench/import_graph.ts server/config/resolve_config.ts     # or of any files, relative to the repository
 *   bun bench/import_graph.ts --cycles             # the value import cycles, one a line
 *
 * A type-only import (`import type`, `export type`, or braces whose every name is `type X`) is
 * erased by both runtimes' transpilers, so it loads nothing and closes no cycle; it is an edge of
 * the graph all the same and is reported apart. A dynamic `import()` loads only when it runs, so it
 * is no edge of the static graph either (the serve path's Redis and etcd sources come that way).
 *
 * @module
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";

/** One relative import of one file. */
export interface ImportEdge {
  /** The imported file, as a path relative to the repository root. */
  to: string;
  /** `value`: loads the module; `type`: erased; `dynamic`: an `import()` call. */
  kind: "value" | "type" | "dynamic";
}

/** The product's folders: what `tests/layers_test.ts` checks for cycles. */
export const PRODUCT_FOLDERS = ["server", "admin", "load", "cli"] as const;

/** The repository root (this file is bench/import_graph.ts). */
export const REPO_ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");

function withoutComments(text: string): string {
  // Block comments (the JSDoc examples quote imports), then whole-line `//` comments; a `//`
  // after code (a URL in a string) is left alone.
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

function isTypeOnly(clause: string): boolean {
  const trimmed = clause.trim();
  if (/^type\s/.test(trimmed)) return true;
  const braces = /^\{([\s\S]*)\}$/.exec(trimmed);
  if (braces === null) return false;
  const names = braces[1]!.split(",").map((name) => name.trim()).filter((name) => name !== "");
  return names.length > 0 && names.every((name) => /^type\s/.test(name));
}

/**
 * Every relative import in a module's text, classified.
 *
 * @param text the module's source
 * @returns the specifiers as written, each with its kind
 */
export function importsIn(text: string): { specifier: string; kind: ImportEdge["kind"] }[] {
  const source = withoutComments(text);
  const found: { specifier: string; kind: ImportEdge["kind"] }[] = [];
  const statement = /(?:^|[;\n])\s*(import|export)\s+([^;]*?)\s*from\s*["'](\.{1,2}\/[^"']+)["']/g;
  for (const match of source.matchAll(statement)) {
    found.push({ specifier: match[3]!, kind: isTypeOnly(match[2]!) ? "type" : "value" });
  }
  for (const match of source.matchAll(/(?:^|[;\n])\s*import\s*["'](\.{1,2}\/[^"']+)["']/g)) {
    found.push({ specifier: match[1]!, kind: "value" });
  }
  for (const match of source.matchAll(/\bimport\s*\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g)) {
    found.push({ specifier: match[1]!, kind: "dynamic" });
  }
  return found;
}

/**
 * Every .ts file under a folder, leaving out node_modules and the dashboard's bundle.
 *
 * @param dir The folder.
 * @returns The files' paths.
 */
export function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === "node_modules" || name === "bundle") continue;
    if (statSync(path).isDirectory()) files.push(...sourceFiles(path));
    else if (name.endsWith(".ts")) files.push(path);
  }
  return files;
}

/**
 * The import graph of the given folders (and of every .ts file they reach outside them).
 *
 * @param root the repository root
 * @param folders the folders to start from, relative to `root`
 * @returns each file (relative to `root`) with its relative imports of .ts files
 */
export function importGraph(
  root: string,
  folders: readonly string[],
): Map<string, ImportEdge[]> {
  const graph = new Map<string, ImportEdge[]>();
  const pending = folders.flatMap((folder) =>
    folder.endsWith(".ts") ? [join(root, folder)] : sourceFiles(join(root, folder))
  );
  while (pending.length > 0) {
    const file = pending.pop()!;
    const key = relative(root, file);
    if (graph.has(key) || !existsSync(file)) continue;
    const edges: ImportEdge[] = [];
    for (const { specifier, kind } of importsIn(readFileSync(file, "utf8"))) {
      if (!specifier.endsWith(".ts")) continue; // package.json, assets
      const target = resolve(dirname(file), specifier);
      edges.push({ to: relative(root, target), kind });
      pending.push(target);
    }
    graph.set(key, edges);
  }
  return graph;
}

/**
 * The modules that loading `entry` evaluates: itself and every module its static value imports
 * reach.
 *
 * @param graph from {@linkcode importGraph}
 * @param entry a file relative to the root
 * @returns the files, sorted
 */
export function modulesLoadedBy(graph: Map<string, ImportEdge[]>, entry: string): string[] {
  const seen = new Set<string>([entry]);
  const stack = [entry];
  while (stack.length > 0) {
    for (const edge of graph.get(stack.pop()!) ?? []) {
      if (edge.kind !== "value" || seen.has(edge.to)) continue;
      seen.add(edge.to);
      stack.push(edge.to);
    }
  }
  return [...seen].sort();
}

/**
 * The cycles of the graph over the given kinds of edge: each strongly connected component of
 * more than one file (or a file importing itself), its files sorted.
 *
 * @param graph from {@linkcode importGraph}
 * @param kinds the edges that count (`["value"]`: the cycles that order module evaluation)
 * @returns the cycles, largest first
 */
export function importCycles(
  graph: Map<string, ImportEdge[]>,
  kinds: readonly ImportEdge["kind"][] = ["value"],
): string[][] {
  // Tarjan's algorithm, iterative so a deep graph cannot overflow the stack.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  let next = 0;
  const targets = (file: string) =>
    (graph.get(file) ?? []).filter((e) => kinds.includes(e.kind)).map((e) => e.to);
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work: { file: string; edges: string[]; at: number }[] = [];
    const enter = (file: string) => {
      index.set(file, next);
      low.set(file, next);
      next++;
      stack.push(file);
      onStack.add(file);
      work.push({ file, edges: targets(file), at: 0 });
    };
    enter(start);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      if (frame.at < frame.edges.length) {
        const to = frame.edges[frame.at++]!;
        if (!index.has(to)) enter(to);
        else if (onStack.has(to)) {
          low.set(frame.file, Math.min(low.get(frame.file)!, index.get(to)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) {
        low.set(parent.file, Math.min(low.get(parent.file)!, low.get(frame.file)!));
      }
      if (low.get(frame.file) !== index.get(frame.file)) continue;
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== frame.file);
      if (component.length > 1 || targets(frame.file).includes(frame.file)) {
        cycles.push(component.sort());
      }
    }
  }
  return cycles.sort((a, b) => b.length - a.length || a[0]!.localeCompare(b[0]!));
}

/** The files issue 24 counts the load of. */
export const NAMED_FILES = [
  "server/numbering/number_ledger.ts",
  "server/limits/cidr_list.ts",
  "load/load_options.ts",
] as const;

function main(args: string[]): void {
  const graph = importGraph(REPO_ROOT, [...PRODUCT_FOLDERS, "mod.ts"]);
  if (args.includes("--cycles")) {
    for (const kinds of [["value"], ["value", "type"]] as const) {
      const cycles = importCycles(graph, kinds);
      console.log(`${kinds.join(" + ")} import cycles: ${cycles.length}`);
      for (const cycle of cycles) console.log(`  ${cycle.length} files: ${cycle.join(" ")}`);
    }
    return;
  }
  const files = args.length > 0 ? args : [...NAMED_FILES];
  const product = [...graph.keys()].filter((file) => !file.startsWith("bench/"));
  console.log(`product modules: ${product.length}`);
  for (const file of files) {
    const loaded = modulesLoadedBy(graph, file);
    console.log(`${file}: loads ${loaded.length} modules`);
    if (process.env.VERBOSE) { for (const module of loaded) console.log(`  ${module}`); }
  }
}

if (import.meta.main) main(process.argv.slice(2));
