// Durations are measured on one monotonic clock (server/common/clock.ts). These guards fail
// when a wall-clock read, or a second way to read time, creeps back into server or admin code.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { ROOT } from "./_server.ts";

/** Files that may read the wall clock, each for a time shown to people, never a duration. */
const WALL_CLOCK_ALLOWED: Record<string, string> = {
  "server/lease/_lease_tally.ts": "lastErrorAt, a time of day in /v1/info",
  "admin/process_metrics.ts": "the process start time for /metrics",
  "server/log_line.ts": "the time of day stamped on each log line",
  "server/tls/tls_files.ts": "formats the certificate's expiry date (new Date(x) reads no clock)",
};

/** The one file that reads the monotonic clock itself. */
const CLOCK_MODULE = "server/common/clock.ts";

function sources(folder: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(join(ROOT, folder), { withFileTypes: true })) {
    const path = join(folder, entry.name);
    // admin/ui is browser code: a page's poll timer, not the server's.
    if (entry.isDirectory() && path !== join("admin", "ui")) files.push(...sources(path));
    else if (entry.isFile() && entry.name.endsWith(".ts")) files.push(path);
  }
  return files;
}

/** `file:line: text` for each code line (comments skipped) matching `pattern`. */
function uses(pattern: RegExp, except: (file: string) => boolean): string[] {
  const found: string[] = [];
  for (const file of [...sources("server"), ...sources("admin")]) {
    const name = relative(ROOT, join(ROOT, file)).replaceAll("\\", "/");
    if (except(name)) continue;
    readFileSync(join(ROOT, file), "utf8").split("\n").forEach((line, i) => {
      const code = line.trimStart();
      if (code.startsWith("*") || code.startsWith("/*") || code.startsWith("//")) return;
      if (pattern.test(code.replace(/\/\/.*$/, ""))) found.push(`${name}:${i + 1}: ${code}`);
    });
  }
  return found;
}

test("clock guard: no wall-clock read in server/ or admin/ outside the display-only places", () => {
  const found = uses(/\bDate\.now\b|\bnew Date\b|\bDate\(\)/, (file) => file in WALL_CLOCK_ALLOWED);
  assert.deepEqual(
    found,
    [],
    "Measure durations with monotonicNow() from server/common/clock.ts; a wall-clock time " +
      "only for display, added to WALL_CLOCK_ALLOWED with the reason",
  );
});

test("clock guard: the monotonic clock is read in one place", () => {
  const found = uses(
    /\bperformance\.now\b|\bhrtime\b|\bBun\.nanoseconds\b/,
    (f) => f === CLOCK_MODULE,
  );
  assert.deepEqual(found, [], `Read time through monotonicNow() from ${CLOCK_MODULE}`);
});
