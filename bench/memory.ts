/**
 * The memory benchmark: the idle memory of a tallyho serving process and of its supervisor, and
 * the memory each held connection costs (at the peak while the connections open, and steady
 * once they are held), for tallyho on Bun, on Deno and compiled and for the smallest bare
 * `Bun.listen` and `Deno.listen` servers, all in the same run; writes the section "memory" of
 * bench/RESULTS.md. See bench/README.md.
 *
 *   bun bench/memory.ts [--quick] [--connections 10000,100000] [--servers a,b] [--binary PATH]
 *       [--in-flight N] [--min-free MIB] [--out FILE.md] [--json FILE] [--no-write]
 *
 * --quick: 1,000 connections, every server, settling cut short: a smoke of the whole run in
 * under a minute. Without --binary, the binary is built with ./compile.sh into a temporary
 * directory. It refuses (exit 2, one line) a run this machine cannot hold: the open-file limits
 * or the memory available; it stops a run whose machine falls under --min-free / 2 MiB available,
 * and it stops everything it started on exit and on SIGINT or SIGTERM. Run it under the shared
 * lock: `flock /tmp/tallyho-heavy.lock bun bench/memory.ts`.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { readMachineMemory } from "../load/host_memory.ts";
import { readHostFacts } from "../server/host/host_facts.ts";
import { freePort } from "./compare/server_process.ts";
import { BUN, DENO, ROOT } from "./compare/servers.ts";
import { holderPath, PER_HOLDER } from "./memory/holders.ts";
import { memoryMarkdown, type MemoryResults } from "./memory/memory_markdown.ts";
import { killEverything, measureRun, type MemoryRun } from "./memory/memory_run.ts";
import { MEMORY_SERVERS, type MemoryServerName } from "./memory/memory_servers.ts";
import { writeSection } from "./results_section.ts";

const MiB = 2 ** 20;
/** Kernel memory per loopback connection, both ends (bench/RESULTS.md's million: about 10 KB). */
const KERNEL_PER_CONNECTION = 12 * 1024;
/** A generous guess of what a connection costs each runtime's server, to refuse a run early. */
const SERVER_PER_CONNECTION = { bun: 4 * 1024, deno: 16 * 1024 };
/** A generous guess of a serving process's idle memory. */
const PER_PROCESS = 160 * MiB;

function refuse(message: string): never {
  console.error(`bench/memory: refusing to start: ${message}`);
  process.exit(2);
}

function log(line: string): void {
  console.error(`bench/memory: ${line}`);
}

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    connections: { type: "string" },
    servers: { type: "string" },
    binary: { type: "string" },
    "in-flight": { type: "string", default: "512" },
    "min-free": { type: "string", default: "2048" },
    out: { type: "string", default: join(ROOT, "bench/RESULTS.md") },
    json: { type: "string" },
    "no-write": { type: "boolean", default: false },
  },
});

function positiveList(name: string, text: string): number[] {
  const list = text.split(",").map((part) => Number(part.trim()));
  if (list.some((n) => !Number.isInteger(n) || n < 1)) {
    refuse(`--${name} takes whole numbers of at least 1, separated by commas: got '${text}'`);
  }
  return list;
}

const quick = values.quick;
const sizes = positiveList("connections", values.connections ?? (quick ? "1000" : "10000,100000"));
const servers = (values.servers?.split(",") ?? [...MEMORY_SERVERS]) as MemoryServerName[];
for (const name of servers) {
  if (!MEMORY_SERVERS.includes(name)) {
    refuse(`--servers takes some of ${MEMORY_SERVERS.join(", ")}: got '${name}'`);
  }
}
const [inFlight] = positiveList("in-flight", values["in-flight"]!);
const [minFreeMiB] = positiveList("min-free", values["min-free"]!);

// ---- what this machine can hold ----
const openFiles = readHostFacts().openFiles;
if (openFiles < PER_HOLDER + 1000) {
  refuse(`the open-file limit is ${openFiles}; the holders need ${PER_HOLDER + 1000}`);
}
const perProcess = openFiles - 256;
/** Serving processes for `n` connections: a quarter to spare for SO_REUSEPORT's imbalance. */
const processesFor = (n: number) => Math.max(1, Math.ceil((n * 1.25) / perProcess));
const largest = Math.max(...sizes);
if (processesFor(largest) > 64) {
  refuse(`${largest} connections need more than 64 serving processes here; ask for fewer`);
}
const fileMax = Number(readFileSync("/proc/sys/fs/file-max", "utf8"));
if (fileMax < 2 * largest + 10_000) {
  refuse(`fs.file-max is ${fileMax}, under the ${2 * largest + 10_000} files the run needs`);
}
function needBytes(name: MemoryServerName, n: number): number {
  const runtime = name.endsWith("deno") ? "deno" : "bun";
  return n * (SERVER_PER_CONNECTION[runtime] + KERNEL_PER_CONNECTION) +
    (processesFor(n) + 1) * PER_PROCESS;
}
const available = readMachineMemory().availableBytes;
const mostNeeded = Math.max(...servers.flatMap((name) => sizes.map((n) => needBytes(name, n))));
if (available < mostNeeded + minFreeMiB! * MiB) {
  refuse(
    `the largest run needs about ${Math.round(mostNeeded / MiB)} MiB and ${minFreeMiB} MiB to ` +
      `spare; ${Math.round(available / MiB)} MiB is available (ask for fewer with --connections)`,
  );
}

// ---- clean-up of everything started, whatever happens ----
const dir = mkdtempSync(join(tmpdir(), "tallyho-memory-"));
const cleanUp = () => rmSync(dir, { recursive: true, force: true });
process.on("exit", cleanUp);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    killEverything();
    process.exit(130);
  });
}

const holder = holderPath();
let binary = values.binary ?? "";
if (binary === "" && servers.includes("tallyho-binary")) {
  binary = join(dir, "tallyho");
  log("building the binary with ./compile.sh");
  execFileSync(join(ROOT, "compile.sh"), ["--outfile", binary], { cwd: ROOT, stdio: "ignore" });
}
log(`holder ${holder}`);

const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
const startedAt = performance.now();
const loadBefore = loadAverage();
const runs: MemoryRun[] = [];
const skipped: MemoryResults["skipped"] = [];
for (const n of sizes) {
  for (const name of servers) {
    const free = readMachineMemory().availableBytes;
    if (free < needBytes(name, n) + minFreeMiB! * MiB) {
      skipped.push({
        server: name,
        connections: n,
        reason: `${Math.round(free / MiB)} MiB available, under the ${
          Math.round(needBytes(name, n) / MiB + minFreeMiB!)
        } MiB it needs`,
      });
      continue;
    }
    log(`${name}: ${n} connections over ${processesFor(n)} processes`);
    try {
      const run = await measureRun(name, n, processesFor(n), {
        port: await freePort(),
        dir,
        binary,
        inFlight: inFlight!,
        setupMs: quick ? 30_000 : 180_000,
        settleMs: quick ? 3_000 : 15_000,
        floorBytes: (minFreeMiB! * MiB) / 2,
      });
      runs.push(run);
      log(
        `${name}: ${run.held} held, ${run.perConnectionPeak} B per connection at the peak, ` +
          `${run.perConnectionSteady} B steady, idle ${Math.round(run.idle.rss / MiB)} MiB`,
      );
    } catch (error) {
      log(`${name}: ${(error as Error).message}`);
      skipped.push({ server: name, connections: n, reason: (error as Error).message });
    }
  }
}

const results: MemoryResults = {
  mode: quick ? "quick" : "full",
  date: new Date().toISOString().slice(0, 10),
  seconds: Math.round((performance.now() - startedAt) / 1000),
  machine: `${cpus().length} cores (${cpus()[0]?.model ?? "?"}), kernel ${release()}, ` +
    `${Math.round(totalmem() / 2 ** 30)} GiB, ${openFiles} open files a process`,
  versions: `bun ${execFileSync(BUN, ["--version"], { encoding: "utf8" }).trim()}, ` +
    execFileSync(DENO, ["--version"], { encoding: "utf8" }).split("\n")[0]!,
  loadBefore,
  loadAfter: loadAverage(),
  command: `bun bench/memory.ts ${process.argv.slice(2).join(" ")}`.trim(),
  runs,
  skipped,
};
const markdown = memoryMarkdown(results);
console.log(markdown);
if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(results, null, 1));
if (!values["no-write"]) writeSection(values.out!, "memory", markdown);
process.exit(runs.length > 0 && skipped.length === 0 ? 0 : 1);
