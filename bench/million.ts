/**
 * The million-connection benchmark: starts tallyho with as many serving processes as the
 * connections need, holds them with `tallyho load --workload hold` (the compiled binary's client
 * for every target, so the server is what differs), measures the server, the kernel and the
 * machine at the peak, times the admin API while it holds, and writes the section "million" of
 * bench/RESULTS.md.
 *
 *   bun bench/million.ts --binary PATH [--target binary|bun|deno]... [--connections N]
 *       [--hold 30s] [--rate N] [--in-flight N] [--processes N] [--deno-connections N]
 *       [--probes N] [--min-free MIB] [--no-write] [--preflight: check, run nothing]
 *
 * It refuses to start (exit 2, with the reason) where the open-file limit, fs.file-max or the
 * memory available is too small for what was asked; the client stops on its own when the
 * machine's available memory falls under --min-free, and this script kills every process it
 * started (server and clients, by process group) on exit, on a signal and on low memory.
 * bench/million.sh runs it under the shared benchmark lock.
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import { planCapacity } from "../server/doctor/capacity.ts";
import { readHostFacts } from "../server/host/host_facts.ts";
import { readMachineMemory } from "../load/host_memory.ts";
import type { HoldReport } from "../load/run_hold.ts";
import { writeSection } from "./results_section.ts";

type Target = "binary" | "bun" | "deno";

const TOKEN = "million-bench-token-0123456789abcdef0123456789";
const ROOT = new URL("..", import.meta.url).pathname;
const GiB = 1024 ** 3;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const { values } = parseArgs({
  options: {
    binary: { type: "string" },
    target: { type: "string", multiple: true },
    connections: { type: "string", default: "1000000" },
    "deno-connections": { type: "string" },
    hold: { type: "string", default: "30s" },
    rate: { type: "string", default: "20000" },
    "in-flight": { type: "string", default: "500" },
    probes: { type: "string", default: "1000" },
    "min-free": { type: "string", default: "1024" },
    port: { type: "string", default: "19900" },
    processes: { type: "string" },
    // 254 server addresses: a few thousand connections each. With 62 (a /26) the set-up fell from
    // about 5,000/s to 400/s past 840,000 held (13,500 a destination): connect() tries the ports
    // of one parity first (28,232 / 2 = 14,116 here), and once they are taken scans them all
    // before trying the other half, for every connection.
    hosts: { type: "string", default: "127.0.0.0/24" },
    "no-write": { type: "boolean", default: false },
    preflight: { type: "boolean", default: false },
  },
});

function refuse(message: string): never {
  console.error(`bench/million: refusing to start: ${message}`);
  process.exit(2);
}

const binary = values.binary ?? refuse("--binary PATH is needed (./compile.sh --outfile PATH)");
const targets = (values.target ?? ["binary", "deno"]) as Target[];
const port = Number(values.port);
const adminPort = port + 1;
const running = new Set<ChildProcess>();

function killAll(): void {
  for (const child of running) {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
  running.clear();
}
process.on("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

function serverCommand(target: Target): string[] {
  const entry = `${ROOT}mod.ts`;
  if (target === "binary") return [binary];
  if (target === "bun") return [process.execPath.includes("bun") ? process.execPath : "bun", entry];
  return ["deno", "run", "-A", "--unstable-net", entry];
}

function nstat(): Record<string, number> {
  const out = spawnSync("nstat", ["-az"], { encoding: "utf8" }).stdout ?? "";
  const counters: Record<string, number> = {};
  for (const line of out.split("\n")) {
    const [name, value] = line.trim().split(/\s+/);
    if (name && value && /^\d+$/.test(value)) counters[name] = Number(value);
  }
  return counters;
}

async function timed(path: string): Promise<{ ms: number; status: number; body: string }> {
  const started = performance.now();
  const response = await fetch(`http://127.0.0.1:${adminPort}${path}`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  const body = await response.text();
  return { ms: performance.now() - started, status: response.status, body };
}

/** The admin API's answers while the connections are held. */
interface AdminFigures {
  statsMs: number[];
  metricsMs: number[];
  dashboardMs: number[];
  statuses: number[];
  perProcess: number[];
  rejected: number;
}

async function measureAdmin(): Promise<AdminFigures> {
  const figures: AdminFigures = {
    statsMs: [],
    metricsMs: [],
    dashboardMs: [],
    statuses: [],
    perProcess: [],
    rejected: 0,
  };
  for (let i = 0; i < 5; i++) {
    const stats = await timed("/v1/stats");
    const metrics = await timed("/metrics");
    const dashboard = await timed("/");
    figures.statsMs.push(stats.ms);
    figures.metricsMs.push(metrics.ms);
    figures.dashboardMs.push(dashboard.ms);
    figures.statuses.push(stats.status, metrics.status, dashboard.status);
    if (i === 0 && stats.status === 200) {
      const view = JSON.parse(stats.body) as {
        totals: Record<string, number>;
        processes: Array<{ totals: Record<string, number> }>;
      };
      figures.perProcess = view.processes.map((p) => p.totals["connectionsActive"] ?? 0);
      figures.rejected = (view.totals["rejectedMaxConnections"] ?? 0) +
        (view.totals["rejectedAddressCap"] ?? 0) + (view.totals["rejectedRate"] ?? 0);
    }
  }
  return figures;
}

/** One target's run. */
interface RunFigures {
  target: Target;
  connections: number;
  serverProcesses: number;
  report: HoldReport | null;
  admin: AdminFigures | null;
  nstat: Record<string, number>;
  clientExit: number | string;
  note: string;
}

function startServer(target: Target, processes: number): Promise<ChildProcess> {
  const [command, ...args] = serverCommand(target);
  const child = spawn(command!, [
    ...args,
    "--host",
    "0.0.0.0",
    "--port",
    String(port),
    "--processes",
    String(processes),
    "--threads",
    "1",
    "--idle-timeout",
    "0",
    // Every held connection comes from 127.0.0.1 (the spread is over server addresses), so the
    // per-address cap, a quarter of the server by default, is off for this benchmark.
    "--max-connections-per-address",
    "0",
    "--admin",
    `127.0.0.1:${adminPort}`,
    "--log-level",
    "warn",
  ], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, TALLYHO_ADMIN_TOKEN: TOKEN },
  });
  running.add(child);
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the server did not start in 120 s:\n${output}`)),
      120_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (/listening on/.test(output)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`the server exited (${code}):\n${output}`)));
  });
}

async function runTarget(target: Target, connections: number): Promise<RunFigures> {
  const perProcess = readHostFacts().openFiles - 256;
  // Room for the SO_REUSEPORT hash's imbalance: measured at a million over 64 processes, shares
  // of 13,143 to 18,111 around 15,625 (standard deviation 6.9 %), so a quarter above the mean.
  // --processes is for the binary's million; the other targets take what their count needs.
  const serverProcesses = values.processes === undefined || target !== "binary"
    ? Math.min(64, Math.ceil((connections * 1.25) / perProcess))
    : Number(values.processes);
  console.error(
    `bench/million: ${target}: ${connections} connections over ${serverProcesses} processes`,
  );
  const server = await startServer(target, serverProcesses);
  const before = nstat();
  const client = spawn(binary, [
    "load",
    "--workload",
    "hold",
    "--port",
    String(port),
    "--host",
    values.hosts!,
    "--connections",
    String(connections),
    "--rate",
    values.rate!,
    "--in-flight",
    values["in-flight"]!,
    "--hold",
    values.hold!,
    "--probes",
    values.probes!,
    "--server-pid",
    String(server.pid),
    "--min-free",
    values["min-free"]!,
    "--json",
  ], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  running.add(client);
  let stdout = "";
  let admin: AdminFigures | null = null;
  client.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  client.stderr!.on("data", (chunk: Buffer) => {
    const text = chunk.toString();
    process.stderr.write(text);
    if (/connections held after/.test(text)) {
      // Children report their figures every second: wait for the ones taken after the set-up.
      sleep(3000).then(measureAdmin).then((figures) => (admin = figures)).catch((error) =>
        console.error(`bench/million: admin API: ${error}`)
      );
    }
  });
  // A second watch on memory, beside the client's own --min-free: kill everything at half that.
  const floor = (Number(values["min-free"]) * 1024 ** 2) / 2;
  let note = "";
  const watch = setInterval(() => {
    if (readMachineMemory().availableBytes < floor) {
      note = `killed at ${Math.round(floor / 1024 ** 2)} MiB available`;
      killAll();
    }
  }, 500);
  const clientExit = await new Promise<number | string>((resolve) =>
    client.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown"))
  );
  clearInterval(watch);
  running.delete(client);
  const after = nstat();
  const delta: Record<string, number> = {};
  for (
    const name of [
      "TcpExtListenOverflows",
      "TcpExtListenDrops",
      "TcpExtTCPReqQFullDrop",
      "TcpExtSyncookiesSent",
      "TcpExtTCPTimeWaitOverflow",
      "TcpRetransSegs",
      "TcpExtTCPAbortOnMemory",
      "TcpExtTCPMemoryPressures",
    ]
  ) delta[name] = (after[name] ?? 0) - (before[name] ?? 0);
  try {
    process.kill(-server.pid!, "SIGTERM");
  } catch {
    // Gone.
  }
  await new Promise((resolve) => {
    const timer = setTimeout(() => {
      killAll();
      resolve(null);
    }, 30_000);
    server.once("exit", () => {
      clearTimeout(timer);
      resolve(null);
    });
  });
  running.delete(server);
  let report: HoldReport | null = null;
  try {
    report = JSON.parse(stdout) as HoldReport;
  } catch {
    note ||= `the client printed no report (exit ${clientExit})`;
  }
  return { target, connections, serverProcesses, report, admin, nstat: delta, clientExit, note };
}

// ---- preflight: refuse where the host cannot hold what is asked ----
const wanted = Number(values.connections);
const facts = readHostFacts();
const memory = readMachineMemory();
const fileMax = Number(readFileSync("/proc/sys/fs/file-max", "utf8"));
if (facts.openFiles < 2048) {
  refuse(`the open-file limit is ${facts.openFiles}; raise it with 'ulimit -n' (20000 or more)`);
}
if (fileMax < 2 * wanted + 100_000) {
  refuse(
    `fs.file-max is ${fileMax}, under the ${2 * wanted + 100_000} open files ${wanted} ` +
      `loopback connections need: sysctl -w fs.file-max=${2 * wanted + 100_000}`,
  );
}
const plan = planCapacity({
  connections: wanted,
  openFiles: { soft: facts.openFiles, hard: facts.openFiles },
  nrOpen: null,
  fileMax: String(fileMax),
  tcpMem: null,
  localPortRange: null,
  somaxconn: null,
  synBacklog: null,
  memAvailableBytes: memory.availableBytes,
  memTotalBytes: memory.totalBytes,
});
if (plan.serverProcesses > 64) {
  refuse(
    `${wanted} connections need ${plan.serverProcesses} serving processes at ` +
      `${plan.perServerProcess} each, more than 64; raise 'ulimit -n'`,
  );
}
if (memory.availableBytes < plan.loopbackBytes + GiB) {
  refuse(
    `${wanted} connections with their clients need about ` +
      `${(plan.loopbackBytes / GiB).toFixed(1)} GiB and 1 GiB to spare; ` +
      `${
        (memory.availableBytes / GiB).toFixed(1)
      } GiB is available (ask for fewer with --connections)`,
  );
}

if (values.preflight) {
  console.error(
    `bench/million: ${wanted} connections fit: ${plan.serverProcesses}+ serving and ` +
      `${plan.clientProcesses} client processes, about ${(plan.loopbackBytes / GiB).toFixed(1)} ` +
      `GiB of ${(memory.availableBytes / GiB).toFixed(1)} GiB available`,
  );
  process.exit(0);
}

const runs: RunFigures[] = [];
for (const target of targets) {
  // Deno's server holds more per connection: as many as the memory left allows, unless given.
  const connections = target === "deno"
    ? Number(values["deno-connections"] ?? Math.min(wanted, 400_000))
    : wanted;
  runs.push(await runTarget(target, connections));
  // Let the kernel free the closed sockets before the next target measures its baseline.
  await new Promise((resolve) => setTimeout(resolve, 5_000));
}
killAll();

// ---- the section ----
const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
const date = new Date().toISOString().slice(0, 10);
const machine = `${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ` +
  `${Math.round(totalmem() / GiB)} GiB, Linux, open files ${facts.openFiles} a process`;
const f = (n: number | null | undefined) =>
  n === null || n === undefined ? "n/a" : n.toLocaleString("en-US");
const mib = (b: number | null | undefined) =>
  b === null || b === undefined ? "n/a" : `${Math.round(b / 1024 ** 2)} MiB`;
const median = (xs: number[]) =>
  xs.length === 0 ? 0 : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const lines = [
  "## One million connections held at once (bench/million.ts)",
  "",
  `${date}, ${machine}; load average at the end ${load}. Client: the compiled binary's ` +
  `\`tallyho load --workload hold\` over the server addresses ${values.hosts} (no bind()), ` +
  `--rate ${values.rate} --in-flight ${values["in-flight"]} --hold ${values.hold}; server: ` +
  "`--threads 1 --idle-timeout 0 --max-connections-per-address 0`; " +
  (values.processes === undefined
    ? "processes for the connections plus a quarter for the SO_REUSEPORT hash's imbalance."
    : `${values.processes} processes for the binary, for the others the connections plus a ` +
      "quarter for the SO_REUSEPORT hash's imbalance."),
  "",
  "| | " + runs.map((r) => r.target).join(" | ") + " |",
  "| --- | " + runs.map(() => "---").join(" | ") + " |",
];
const row = (label: string, cell: (r: RunFigures, h: HoldReport) => string) =>
  lines.push(
    `| ${label} | ` + runs.map((r) => r.report === null ? "n/a" : cell(r, r.report)).join(" | ") +
      " |",
  );
row("connections asked", (r) => f(r.connections));
row("held at once", (_, h) => f(h.held));
row("answered twice", (_, h) => `${f(h.answeredAgain)} of ${f(h.askedAgain)}`);
row("repeats", (_, h) => String(h.check.repeats));
row(
  "errors",
  (_, h) =>
    h.errorsTotal === 0 ? "none" : Object.entries(h.errors).map(([k, n]) => `${k} ${n}`).join(", "),
);
row("stopped by", (r, h) => h.stoppedBy + (r.note ? ` (${r.note})` : ""));
row(
  "time to establish",
  (_, h) => h.establishMs === null ? "n/a" : `${(h.establishMs / 1000).toFixed(1)} s`,
);
row("sustained set-up rate", (_, h) => `${f(h.setupRate)}/s (best second ${f(h.peakRate)}/s)`);
row("serving processes (+ supervisor)", (r) => String(r.serverProcesses));
row("client processes", (_, h) => String(h.processes));
row("server RSS (tree) idle before", (_, h) => mib(h.memory.serverRssBeforeBytes));
row("server RSS (tree) with every connection held", (_, h) => mib(h.memory.serverRssPeakBytes));
row("server RSS (tree), highest while opening", (_, h) => mib(h.memory.serverRssMaxOpeningBytes));
row("server RSS per connection", (_, h) => `${f(h.memory.serverRssPerConnection)} B`);
row(
  "of the RSS, anonymous (less the code's file pages) idle / held",
  (_, h) => `${mib(h.memory.serverAnonBeforeBytes)} / ${mib(h.memory.serverAnonPeakBytes)}`,
);
row("server CPU while holding", (_, h) => `${h.memory.serverHoldCpuPercent ?? "n/a"} % of a core`);
row("kernel slab per connection (both ends)", (_, h) => `${f(h.memory.slabPerConnection)} B`);
row("TCP buffers at the peak (sockstat)", (_, h) => mib(h.memory.tcpBufferBytes));
row(
  "machine memory used (MemAvailable drop)",
  (_, h) => mib(h.memory.availableBeforeBytes - h.memory.availablePeakBytes),
);
row(
  "fresh clients while holding",
  (_, h) =>
    `${f(h.probes.answered)} of ${f(h.probes.count)} answered, p50 ${
      (h.probes.latencyUs.p50 / 1000).toFixed(2)
    } ms, p99 ${(h.probes.latencyUs.p99 / 1000).toFixed(2)} ms`,
);
row(
  "admin /v1/stats, /metrics, / (median)",
  (r) =>
    r.admin === null
      ? "n/a"
      : `${median(r.admin.statsMs).toFixed(0)} / ${median(r.admin.metricsMs).toFixed(0)} / ${
        median(r.admin.dashboardMs).toFixed(0)
      } ms`,
);
row(
  "connections per process (min-max)",
  (r) =>
    r.admin === null || r.admin.perProcess.length === 0
      ? "n/a"
      : `${f(Math.min(...r.admin.perProcess))}-${f(Math.max(...r.admin.perProcess))} (cap ${
        f(readHostFacts().openFiles - 256)
      }), refused ${r.admin.rejected}`,
);
row(
  "accept queue overflows (nstat)",
  (r) =>
    `${r.nstat["TcpExtListenOverflows"]} overflows, ${
      r.nstat["TcpExtTCPReqQFullDrop"]
    } SYN queue drops, ${r.nstat["TcpRetransSegs"]} retransmits`,
);
const markdown = lines.join("\n");
console.log(markdown);
console.log(
  JSON.stringify(runs.map((r) => ({ ...r, report: r.report })), null, 1).slice(0, 200_000),
);
if (!values["no-write"]) writeSection(`${ROOT}bench/RESULTS.md`, "million", markdown);
process.exit(runs.every((r) => r.report?.ok === true) ? 0 : 1);
