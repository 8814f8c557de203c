import assert from "node:assert/strict";
import { test } from "node:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./_server.ts";

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith(".ts")
      ? [join(dir, entry.name)]
      : []
  );
}

test("server's mod.ts files never re-export a folder-private (_-prefixed) file", () => {
  const mods = sourceFiles("server").filter((file) => file.endsWith("mod.ts"));
  assert.ok(mods.includes(join("server", "mod.ts")));
  for (const file of mods) {
    const text = readFileSync(join(ROOT, file), "utf8");
    const private_ = [...text.matchAll(/^export[^;]*from\s+"([^"]+)"/gm)]
      .map((match) => match[1]!)
      .filter((path) => path.split("/").at(-1)!.startsWith("_"));
    assert.deepEqual(private_, [], `${file} re-exports private files`);
  }
});

test("server and admin spell the runtime union once, as Runtime in server/runtime.ts", () => {
  const union = /["']bun["']\s*\|\s*["']deno["']|["']deno["']\s*\|\s*["']bun["']/;
  const spelled = [...sourceFiles("server"), ...sourceFiles("admin")]
    .filter((file) => union.test(readFileSync(join(ROOT, file), "utf8")));
  assert.deepEqual(spelled, [join("server", "runtime.ts")]);
});
