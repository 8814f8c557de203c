/**
 * The layers only look down: cli/ (the composition root) -> admin/, load/ -> server/. Every
 * import of every source file is read, so a new import that crosses a layer upwards (or sideways
 * between admin/ and load/) fails here, and so does a mod.ts that re-exports a private `_` file,
 * and so does a value import cycle anywhere in the product (bench/import_graph.ts reads the graph).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import {
  importCycles,
  importGraph,
  importsIn,
  modulesLoadedBy,
  PRODUCT_FOLDERS,
  sourceFiles,
} from "../bench/import_graph.ts";
import { ROOT } from "./_server.ts";

/** What each top-level folder may import from the others. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  server: [],
  admin: ["server"],
  load: ["server"],
  cli: ["server", "admin", "load"],
  bench: ["server", "load"],
};

/** Every relative module specifier in a file: `import`, `export ... from`, `import()`. */
function relativeImports(text: string): string[] {
  return importsIn(text).map(({ specifier }) => specifier);
}

function layerOf(path: string): string {
  return relative(ROOT, path).split("/")[0]!;
}

test("layers: server/ imports nothing above it, and no layer imports upwards or sideways", () => {
  const violations: string[] = [];
  let checked = 0;
  for (const [layer, allowed] of Object.entries(MAY_IMPORT)) {
    for (const file of sourceFiles(join(ROOT, layer))) {
      for (const specifier of relativeImports(readFileSync(file, "utf8"))) {
        checked++;
        const target = layerOf(resolve(dirname(file), specifier));
        // Files at the root (package.json for the version) belong to no layer.
        if (!(target in MAY_IMPORT) && target !== "tests") continue;
        if (target === layer || allowed.includes(target)) continue;
        violations.push(`${relative(ROOT, file)} imports ${specifier} (${layer} -> ${target})`);
      }
    }
  }
  assert.ok(checked > 200, `read only ${checked} imports: is the scan still finding them?`);
  assert.deepEqual(violations, [], violations.join("\n"));
});

test("layers: the scan sees an upward import when there is one", () => {
  const planted = `import { createAdminApp } from "../admin/app.ts";\nexport * from "./_x.ts";`;
  assert.deepEqual(relativeImports(planted), ["../admin/app.ts", "./_x.ts"]);
  const file = join(ROOT, "server", "serve.ts");
  assert.equal(layerOf(resolve(dirname(file), "../admin/app.ts")), "admin");
});

test("layers: no mod.ts re-exports a folder-private _ file", () => {
  const offenders: string[] = [];
  for (const layer of Object.keys(MAY_IMPORT)) {
    for (const file of sourceFiles(join(ROOT, layer))) {
      if (!file.endsWith("/mod.ts")) continue;
      // Importing a private file to use it is fine (adapters/mod.ts picks the runtime's); handing
      // it on is not.
      const text = readFileSync(file, "utf8");
      for (const match of text.matchAll(/export\s[^;]*?from\s*["'](\.{1,2}\/[^"']+)["']/g)) {
        const specifier = match[1]!;
        if (/(^|\/)_[^/]*$/.test(specifier)) {
          offenders.push(`${relative(ROOT, file)}: ${specifier}`);
        }
      }
    }
  }
  assert.deepEqual(offenders, []);
});

/**
 * Value import cycles still in the product, each as its files sorted and joined by a space: issue
 * 24 removes them one by one. A cycle not listed fails the test below, and so does a listed one
 * that is gone (take it off the list).
 */
const KNOWN_VALUE_CYCLES: readonly string[] = [];

test("layers: no value import cycle anywhere in the product, inside a layer either", () => {
  // Type-only imports (`import type`, braces of `type X` only) are erased by both runtimes'
  // transpilers: they load nothing and order no evaluation, so they are allowed to close a loop.
  // A dynamic import() loads when it runs, and is no edge either.
  const graph = importGraph(ROOT, PRODUCT_FOLDERS);
  assert.ok(graph.size > 150, `read only ${graph.size} modules: is the scan still finding them?`);
  const cycles = importCycles(graph, ["value"]).map((cycle) => cycle.join(" "));
  const unknown = cycles.filter((cycle) => !KNOWN_VALUE_CYCLES.includes(cycle));
  const gone = KNOWN_VALUE_CYCLES.filter((cycle) => !cycles.includes(cycle));
  assert.deepEqual(unknown, [], `value import cycles:\n${unknown.join("\n")}`);
  assert.deepEqual(gone, [], `cycles listed as known that are gone:\n${gone.join("\n")}`);
});

test("layers: the cycle check sees a value cycle, and not a type-only one", () => {
  const edges = (text: string) =>
    importsIn(text).map(({ specifier, kind }) => `${kind} ${specifier}`);
  assert.deepEqual(
    edges(
      `import type { A } from "./a.ts";\nimport { type B, type C } from "./b.ts";\n` +
        `import { type D, e } from "./d.ts";\nexport * from "./f.ts";\nimport "./g.ts";\n` +
        `/** import { x } from "./comment.ts"; */\nconst h = await import("./h.ts");`,
    ),
    [
      "type ./a.ts",
      "type ./b.ts",
      "value ./d.ts",
      "value ./f.ts",
      "value ./g.ts",
      "dynamic ./h.ts",
    ],
  );
  const graph = new Map([
    ["a.ts", [{ to: "b.ts", kind: "value" as const }]],
    ["b.ts", [{ to: "c.ts", kind: "value" as const }]],
    ["c.ts", [{ to: "a.ts", kind: "value" as const }, { to: "d.ts", kind: "type" as const }]],
    ["d.ts", [{ to: "c.ts", kind: "value" as const }]],
  ]);
  assert.deepEqual(importCycles(graph, ["value"]), [["a.ts", "b.ts", "c.ts"]]);
  assert.deepEqual(importCycles(graph, ["value", "type"]), [["a.ts", "b.ts", "c.ts", "d.ts"]]);
});

test("layers: server/common/ is a leaf: it imports nothing of the repository outside itself", () => {
  const graph = importGraph(ROOT, ["server/common"]);
  const outside = [...graph].flatMap(([file, edges]) =>
    edges.filter((edge) => !edge.to.startsWith("server/common/")).map((edge) =>
      `${file} imports ${edge.to}`
    )
  );
  assert.ok(graph.size >= 2, `found only ${graph.size} files in server/common/`);
  assert.deepEqual(outside, []);
});

/**
 * The modules of server/ that may pick the runtime (import server/adapters/mod.ts): the entry
 * points. Everything else is handed the runtime adapter, or the functions it holds.
 */
const RUNTIME_PICKERS = [
  "server/process/child_main.ts",
  "server/start_server.ts",
  "server/threads/worker_main.ts",
];

test("layers: in server/ only the adapters and the entry points pick the runtime", () => {
  const graph = importGraph(ROOT, ["server"]);
  const pickers = [...graph].filter(([file, edges]) =>
    !file.startsWith("server/adapters/") &&
    edges.some((edge) => edge.to === "server/adapters/mod.ts" && edge.kind !== "type")
  ).map(([file]) => file);
  assert.deepEqual(pickers.sort(), RUNTIME_PICKERS);
  const asking: string[] = [];
  for (const file of sourceFiles(join(ROOT, "server"))) {
    if (file.includes("/adapters/")) continue;
    if (/["'](Bun|Deno)["']\s+in\s+globalThis/.test(readFileSync(file, "utf8"))) {
      asking.push(relative(ROOT, file));
    }
  }
  assert.deepEqual(asking, [], "asks which runtime it runs on");
});

/**
 * What a serving child (`tallyho _child`) loads: `mod.ts`, the dispatcher and the child's own
 * graph. Each builtin below cost it RSS at idle while most processes never use it; they are
 * loaded where used (server/common/lazy_builtins.ts).
 */
const CHILD_ENTRIES = ["mod.ts", "cli/run_program.ts", "server/process/child_main.ts"];
const LAZY_BUILTINS = ["node:net", "node:crypto"];

test("layers: a serving child's modules import node:net and node:crypto for types only", () => {
  const graph = importGraph(ROOT, CHILD_ENTRIES);
  const loaded = new Set(CHILD_ENTRIES.flatMap((entry) => modulesLoadedBy(graph, entry)));
  assert.ok(loaded.size > 50, `the child's graph holds only ${loaded.size} modules`);
  const eager: string[] = [];
  // `import ... from "node:x"`, `export ... from "node:x"` and a bare `import "node:x"`.
  const statement =
    /(?:^|[;\n])\s*(?:import|export)\s+(type\s)?(?:[^;"']*?from\s*)?["'](node:[a-z/_]+)["']/g;
  for (const file of loaded) {
    for (const match of readFileSync(join(ROOT, file), "utf8").matchAll(statement)) {
      if (match[1] === undefined && LAZY_BUILTINS.includes(match[2]!)) {
        eager.push(`${file} imports ${match[2]}`);
      }
    }
  }
  assert.deepEqual(eager, []);
});
