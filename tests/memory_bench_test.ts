/**
 * bench/memory.ts --quick runs end to end: every server it measures is started, held by the C
 * holders, asked again and stopped, and the section it writes has the shape bench/RESULTS.md
 * expects (its marker, the idle and per-connection tables with a row for each server). Its
 * figures are not judged here (benchmarks are not tests); what is judged is that every connection
 * was held and answered twice, with no N given twice.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { sectionOf } from "../bench/results_section.ts";
import { skipOffCi, testNeeding, toolMissing } from "./_tools.ts";
import { ROOT } from "./_server.ts";

const test = testNeeding(skipOffCi(toolMissing("cc", "gcc")));

const SERVERS = ["bare-bun", "tallyho-bun", "tallyho-binary", "bare-deno", "tallyho-deno"];

interface Run {
  server: string;
  connections: number;
  held: number;
  failed: number;
  again: { answered: number };
  afterProcesses: Array<{ rss: number }>;
  repeats: number | null;
}

test("memory bench --quick: holds every server's connections and writes the memory section's tables", () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-memory-test-"));
  try {
    const out = join(dir, "RESULTS.md");
    const json = join(dir, "memory.json");
    const runtime = "Bun" in globalThis ? [] : ["run", "-A", "--unstable-net"];
    const binary = process.env.TALLYHO_BIN ? ["--binary", process.env.TALLYHO_BIN] : [];
    const run = spawnSync(process.execPath, [
      ...runtime,
      join(ROOT, "bench/memory.ts"),
      "--quick",
      "--min-free",
      "512",
      "--out",
      out,
      "--json",
      json,
      ...binary,
    ], { encoding: "utf8", timeout: 240_000, cwd: ROOT });
    assert.equal(run.status, 0, `${run.stderr}\n${run.stdout}`);

    const section = sectionOf(readFileSync(out, "utf8"), "memory");
    assert.ok(section !== null, "bench/memory.ts wrote no section 'memory'");
    assert.match(section, /^## Memory: /);
    assert.match(section, /quick mode/);
    assert.match(section, /\n### Idle\n\n\| server \| process \| RSS \|/);
    assert.match(section, /\n### Per held connection\n\n\| server \| held \|/);
    for (const server of SERVERS) {
      assert.match(section, new RegExp(`\\n\\| ${server} \\| [^|]+ \\| \\d+\\.\\d MB \\|`));
      assert.match(section, new RegExp(`\\n\\| ${server} \\| 1,000 \\| 1 \\| `));
    }
    // Each process read again after serving, beside its fresh idle figure and ratio.
    assert.match(
      section,
      /\n\| bare-bun \| the process \|(?: [^|]+ \|){6} 1\.00x \| \d+\.\d MB \| 1\.00x \|\n/,
    );
    assert.match(
      section,
      /\n\| tallyho-bun \| serving process \(1 thread\) \|(?: [^|]+ \|){6} \d\.\d\dx \| \d+\.\d MB \| \d\.\d\dx \|\n/,
    );
    assert.match(section, /serving process \(1 thread\)/);
    assert.match(section, /supervisor \(admin API on\)/);

    const runs = (JSON.parse(readFileSync(json, "utf8")) as { runs: Run[] }).runs;
    assert.deepEqual(runs.map((r) => r.server), SERVERS);
    for (const r of runs) {
      assert.equal(r.connections, 1000, r.server);
      assert.equal(r.held, 1000, `${r.server}: ${r.failed} failed`);
      assert.equal(r.again.answered, 1000, r.server);
      assert.ok(r.afterProcesses.length > 0, `${r.server}: no process read after serving`);
      assert.equal(r.repeats, r.server.startsWith("tallyho-") ? 0 : null, r.server);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
