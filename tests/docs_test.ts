/**
 * The docs held to the program: the usage they print is `--help` word for word, the keys table is
 * the option table's, every relative
 * link resolves, every command runs after the README's setup (no bare `bun`, `deno` or
 * `tallyho`, which `npm ci` does not put on PATH), the README stays a first screen whose test
 * command CI runs, and the build script's help is its help.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { test } from "node:test";
import { anchors, blockAfter, docFiles, links, shellCommands } from "./_docs.ts";
import { optionReferenceTable } from "../server/config/option_reference.ts";
import { ROOT, runTallyho, UNDER_TEST } from "./_server.ts";

function read(file: string): string {
  return readFileSync(join(ROOT, file), "utf8");
}

test(`[${UNDER_TEST}] docs: the usage in docs/configuration.md and the README is --help's`, async () => {
  const help = await runTallyho(["--help"]);
  assert.equal(help.code, 0, help.stderr);
  const printed = help.stdout.trimEnd();
  const documented = blockAfter(read("docs/configuration.md"), "help:start");
  assert.equal(documented, printed, "docs/configuration.md's usage block differs from --help");
  // The README shows the commands only: they must be a run of --help's lines, unchanged.
  const readmeUsage = blockAfter(read("README.md"), "usage");
  assert.ok(
    printed.includes(readmeUsage),
    `the README's usage block is not part of --help:\n${readmeUsage}`,
  );
});

test(`[${UNDER_TEST}] docs: the keys table in docs/configuration.md is the option table's`, () => {
  const text = read("docs/configuration.md");
  const start = text.indexOf("<!-- options:start");
  const end = text.indexOf("<!-- options:end -->");
  assert.ok(start >= 0 && end > start, "docs/configuration.md has no options:start/end markers");
  const documented = text.slice(text.indexOf("\n", start) + 1, end).trim();
  assert.equal(
    documented,
    optionReferenceTable(),
    "docs/configuration.md's keys table differs from server/config/option_table.ts: paste " +
      "optionReferenceTable()'s output between the markers",
  );
});

test(`[${UNDER_TEST}] docs: every relative link in the README and docs/ resolves`, () => {
  const broken: string[] = [];
  for (const file of docFiles()) {
    for (const { target, line } of links(read(file))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
      const [path = "", anchor] = target.split("#");
      const resolved = path === "" ? file : normalize(join(dirname(file), decodeURI(path)));
      const where = `${file}:${line}: ${target}`;
      if (resolved.startsWith("..") || !existsSync(join(ROOT, resolved))) {
        broken.push(`${where} (no file ${resolved})`);
        continue;
      }
      if (anchor === undefined || !resolved.endsWith(".md")) continue;
      if (statSync(join(ROOT, resolved)).isDirectory()) continue;
      if (!anchors(read(resolved)).has(anchor)) broken.push(`${where} (no heading #${anchor})`);
    }
  }
  assert.deepEqual(broken, [], `broken links:\n${broken.join("\n")}`);
});

test(`[${UNDER_TEST}] docs: every shell command runs after npm ci (no bare bun, deno or tallyho)`, () => {
  // `npm ci` puts nothing on PATH: the docs say `npx bun`, `npm run`, `npm start -- ...` or
  // `dist/tallyho`. A Deno user runs `deno install` and `deno task` with their own deno.
  const bare: string[] = [];
  for (const file of docFiles()) {
    for (const { target, line } of shellCommands(read(file))) {
      const words = target.replace(/^(\w+=\S*\s+)+/, "").split(/\s+/);
      const [first = "", second = ""] = words;
      const denoUser = first === "deno" && (second === "task" || second === "install");
      if (["bun", "bunx", "tallyho"].includes(first) || (first === "deno" && !denoUser)) {
        bare.push(`${file}:${line}: ${target}`);
      }
    }
  }
  assert.deepEqual(
    bare,
    [],
    `commands that fail with 'command not found' after npm ci:\n${bare.join("\n")}`,
  );
});

test(`[${UNDER_TEST}] docs: the README is a first screen and CI runs its test command`, () => {
  const readme = read("README.md");
  const bytes = new TextEncoder().encode(readme).length;
  assert.ok(
    bytes <= 8192,
    `README.md is ${bytes} bytes; keep it to 8 KiB and move detail to docs/`,
  );
  const long = readme.split("\n").filter((line) => line.length > 120);
  assert.deepEqual(long, [], "README lines over 120 characters");
  // `.ci/run` must run what the README tells a newcomer to run, so the README cannot drift.
  const testCommand = blockAfter(readme, "quick-start:test").trim();
  assert.equal(testCommand, "npm ci && npm test");
  const ci = read(".ci/run").split("\n").filter((line) => !line.trim().startsWith("#"));
  for (const part of testCommand.split("&&").map((command) => command.trim())) {
    assert.ok(ci.some((line) => line.includes(part)), `.ci/run does not run '${part}'`);
  }
});

test(`[${UNDER_TEST}] docs: ./compile.sh --help prints its comment and nothing of the script`, () => {
  const script = read("compile.sh").split("\n");
  const comment: string[] = [];
  for (const line of script.slice(1)) {
    if (!line.startsWith("#")) break;
    comment.push(line.replace(/^# ?/, ""));
  }
  const run = spawnSync("bash", [join(ROOT, "compile.sh"), "--help"], {
    encoding: "utf8",
    timeout: 10_000,
  });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, comment.join("\n") + "\n");
  assert.doesNotMatch(run.stdout, /set -euo|^cd /m);
});

test("npm ci: every package with an install script is approved in package.json's allowScripts, so a newcomer's npm ci prints no warning", () => {
  const lock = JSON.parse(read("package-lock.json")) as {
    packages: Record<string, { hasInstallScript?: boolean }>;
  };
  const allowed = (JSON.parse(read("package.json")) as { allowScripts?: Record<string, boolean> })
    .allowScripts ?? {};
  const scripted = Object.entries(lock.packages)
    .filter(([path, entry]) => path !== "" && entry.hasInstallScript === true)
    .map(([path]) => path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length));
  assert.ok(scripted.includes("bun") && scripted.includes("deno"), `read ${scripted.join(", ")}`);
  for (const name of scripted) {
    assert.equal(allowed[name], true, `${name} runs an install script: approve it in allowScripts`);
  }
});
