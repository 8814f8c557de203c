/**
 * The comparison harness: starts each server pinned to one core, drives it with the native
 * client (bench/native_client, C and epoll; `tallyho load` with `--driver tallyho-load` or where
 * there is no C compiler) pinned to the other, runs every workload against every server in the same run, alternating,
 * for several rounds, measures memory per idle connection, and writes bench/RESULTS.md (and the
 * raw figures as JSON beside it).
 *
 *   bun bench/compare/compare.ts            full run (10-14 minutes), writes bench/RESULTS.md
 *   bun bench/compare/compare.ts --quick    seconds: bare Bun vs tallyho on Bun, one round
 *
 * Options: --rounds N, --duration TIME (per run), --servers a,b,..., --memory-connections N,
 * --out FILE.md, --no-compile, --no-memory, --driver native|tallyho-load (default native where a
 * C compiler is found; the memory measurement always uses `tallyho load --workload idle`). `--render FILE.json` rewrites FILE.md from saved
 * figures without measuring.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { parseDuration } from "../../server/config/config_json.ts";
import { coreBusySeconds, machineBusyAllSeconds, machineBusySeconds } from "./cpu_usage.ts";
import { machineInfo } from "./machine.ts";
import type { CompareResults, Measurement, MemoryFigure } from "./results.ts";
import { resultsMarkdown } from "./results_markdown.ts";
import { writeSection } from "../results_section.ts";
import { startDriver, startLoad } from "./run_load_generator.ts";
import { hasCompiler, nativeClientPath } from "../native_client/native_client.ts";
import { adminUrlFrom, LoopDelayProbe } from "./loop_delay_probe.ts";
import { freePort, ServerProcess, sleep } from "./server_process.ts";
import {
  type CompareWorkload,
  ROOT,
  type ServerKind,
  serverNamed,
  SERVERS,
  SYSTEM_PYTHON,
} from "./servers.ts";

const WORKLOADS: CompareWorkload[] = ["closed", "pipelined", "connect"];
const CLOSED_CONNECTIONS = 100;
const PIPELINED_CONNECTIONS = 4;
const PIPELINED_DEPTH = 100;
const CONNECT_CONCURRENCY = 32;
/** Loopback source addresses the native client spreads connects over (127.0.0.2 up). */
const CONNECT_SOURCES = 64;
const WARMUP_MS = 1000;
/** Others' CPU, in cores, above which a run counts as disturbed (this machine is shared). */
const DISTURBED_ABOVE = 0.25;
/**
 * Kernel time on a pinned core that a run may cause without being charged to its process
 * (loopback softirq, connection setup): up to 0.1 core in clean runs here. Beyond it, busy time
 * charged to no process is someone else's (a flood on loopback is processed in softirq).
 */
const OWN_KERNEL_ALLOWANCE = 0.1;
/** Longest wait for the machine to go quiet before a run. */
const QUIET_WAIT_MS = 5000;
/** Time that waiting for quiet and running disturbed runs again may add to a full run, in all. */
const EXTRA_TIME_MS = 300_000;

interface Plan {
  mode: "quick" | "full";
  servers: ServerKind[];
  rounds: number;
  durationMs: number;
  memoryConnections: number;
  memory: boolean;
  compile: boolean;
  warmup: boolean;
  /** Runs per measurement at most: disturbed runs are run again (1 = never). */
  maxAttempts: number;
  out: string;
  /** What drives the throughput runs: the native client, or `tallyho load`. */
  driver: Driver;
}

/** The load drivers: the native client (C, epoll) or the portable `tallyho load`. */
type Driver = "native" | "tallyho-load";

function log(line: string): void {
  console.error(`compare: ${line}`);
}

function parsePlan(args: string[]): Plan {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      quick: { type: "boolean" },
      rounds: { type: "string" },
      duration: { type: "string" },
      servers: { type: "string" },
      "memory-connections": { type: "string" },
      out: { type: "string" },
      "no-compile": { type: "boolean" },
      "no-memory": { type: "boolean" },
      driver: { type: "string" },
    },
  });
  const quick = values.quick === true;
  const positive = (flag: string, text: string | undefined, fallback: number) => {
    if (text === undefined) return fallback;
    if (!/^[1-9]\d*$/.test(text)) {
      throw new RangeError(`'${flag}' must be a positive whole number: got "${text}"`);
    }
    return Number(text);
  };
  const servers = values.servers !== undefined
    ? values.servers.split(",").map(serverNamed)
    : quick
    ? [serverNamed("bare-bun"), serverNamed("tallyho-bun")]
    : SERVERS;
  if (
    values.driver !== undefined && values.driver !== "native" && values.driver !== "tallyho-load"
  ) {
    throw new RangeError(`'driver' must be native or tallyho-load: got "${values.driver}"`);
  }
  const driver: Driver = values.driver ?? (hasCompiler() ? "native" : "tallyho-load");
  if (values.driver === undefined && driver === "tallyho-load") {
    log("no C compiler (cc) here: driving with tallyho load, whose own core may set the pace");
  }
  return {
    driver,
    mode: quick ? "quick" : "full",
    servers,
    rounds: positive("rounds", values.rounds, quick ? 1 : 5),
    durationMs: values.duration !== undefined
      ? parseDuration("duration", values.duration)
      : quick
      ? 1000
      : 3000,
    memoryConnections: positive(
      "memory-connections",
      values["memory-connections"],
      quick ? 500 : 10_000,
    ),
    memory: values["no-memory"] !== true,
    compile: !quick && values["no-compile"] !== true,
    warmup: !quick,
    maxAttempts: quick ? 1 : 3,
    out: values.out ??
      (quick
        ? join(mkdtempSync(join(tmpdir(), "tallyho-compare-")), "RESULTS.md")
        : join(ROOT, "bench/RESULTS.md")),
  };
}

/** Why a server cannot run here, or `null` when it can. */
function unavailable(server: ServerKind): string | null {
  const has = (argv: string[]) => {
    try {
      execFileSync(argv[0]!, argv.slice(1), { stdio: "ignore", timeout: 10_000 });
      return true;
    } catch {
      return false;
    }
  };
  switch (server.name) {
    case "nginx":
      if (!has(["nginx", "-v"])) return "nginx is not installed";
      if (!existsSync("/usr/lib/nginx/modules/ngx_stream_module.so")) {
        return "the stream module (libnginx-mod-stream) is not installed";
      }
      return null;
    case "redis":
      return has(["redis-server", "--version"]) ? null : "redis-server is not installed";
    case "gevent":
      return has([SYSTEM_PYTHON, "-c", "import gevent"])
        ? null
        : `gevent is not importable by ${SYSTEM_PYTHON} (python3-gevent)`;
    case "tallyho-binary":
      return existsSync(join(ROOT, "dist/tallyho")) ? null : "dist/tallyho is missing";
    default:
      return null;
  }
}

/** The native client's flags for a workload (the same shapes as `tallyho load`'s). */
function nativeArgs(workload: CompareWorkload, port: number, durationMs: number): string[] {
  const [, name, , connections, , depth] = workloadArgs(workload);
  return [
    "--workload",
    name!,
    "--connections",
    connections!,
    "--depth",
    depth ?? "1",
    "--port",
    String(port),
    "--duration-ms",
    String(durationMs),
    // Connects from one address walk ephemeral ports still in TIME_WAIT, which took over 40 %
    // of the client's core at 14,000 connects/s (perf: __inet_check_established); from 64
    // addresses each connect finds a free port at once and the server sets the pace.
    "--sources",
    workload === "connect" ? String(CONNECT_SOURCES) : "0",
  ];
}

function workloadArgs(workload: CompareWorkload): string[] {
  switch (workload) {
    case "closed":
      return ["--workload", "closed", "--connections", String(CLOSED_CONNECTIONS)];
    case "pipelined":
      return [
        "--workload",
        "pipelined",
        "--connections",
        String(PIPELINED_CONNECTIONS),
        "--depth",
        String(PIPELINED_DEPTH),
      ];
    case "connect":
      return ["--workload", "connect", "--connections", String(CONNECT_CONCURRENCY)];
  }
}

/** The cores the servers and the load generator are pinned to (`null`: unpinned). */
interface Cores {
  server: number | null;
  client: number | null;
}

interface Running {
  kind: ServerKind;
  process: ServerProcess;
  dir: string;
  /** tallyho's admin API, where its event-loop delay is read; `null` for other servers. */
  adminUrl: string | null;
}

/** Every server started and not yet stopped, for a clean stop on Ctrl-C. */
const live = new Set<ServerProcess>();

async function startServer(
  kind: ServerKind,
  root: string,
  core: number | null,
): Promise<Running> {
  const dir = mkdtempSync(join(root, `${kind.name}-`));
  const port = await freePort();
  const server = await ServerProcess.start(kind.launch(port, dir, core), port);
  live.add(server);
  server.exited.then(() => live.delete(server));
  const adminUrl = kind.tallyho ? await adminUrlFrom(() => server.output()) : null;
  return { kind, process: server, dir, adminUrl };
}

/** What is left of {@linkcode EXTRA_TIME_MS}; once spent, runs are neither delayed nor repeated. */
let extraTimeLeft = EXTRA_TIME_MS;

/**
 * Waits (up to `maxWaitMs`) until the rest of the machine uses at most `DISTURBED_ABOVE` cores.
 * The servers are idle between runs, so what is busy is someone else's.
 */
async function waitForQuiet(maxWaitMs: number): Promise<void> {
  const started = Date.now();
  const deadline = started + Math.min(maxWaitMs, extraTimeLeft);
  try {
    while (Date.now() < deadline) {
      const before = machineBusyAllSeconds();
      await sleep(300);
      const after = machineBusyAllSeconds();
      if (before === null || after === null || (after - before) / 0.3 <= DISTURBED_ABOVE) return;
    }
  } finally {
    extraTimeLeft -= Date.now() - started;
  }
}

async function measureOnce(
  server: Running,
  workload: CompareWorkload,
  round: number,
  durationMs: number,
  cores: Cores,
  driver: Driver,
): Promise<Measurement> {
  const clientCore = cores.client;
  const coreBusy = () => ({
    server: cores.server === null ? null : coreBusySeconds(cores.server),
    client: cores.client === null ? null : coreBusySeconds(cores.client),
  });
  const cpuBefore = server.process.cpuSeconds();
  const busyBefore = machineBusySeconds();
  const coresBefore = coreBusy();
  const probe = server.adminUrl === null ? null : LoopDelayProbe.watch(server.adminUrl);
  const load = driver === "native"
    ? startDriver(
      [nativeClientPath(), ...nativeArgs(workload, server.process.port, durationMs)],
      clientCore,
      durationMs + 60_000,
    )
    : startLoad(
      [
        ...workloadArgs(workload),
        "--port",
        String(server.process.port),
        "--duration",
        `${durationMs}ms`,
        "--threads",
        "1",
      ],
      clientCore,
      durationMs + 60_000,
    );
  const outcome = await load.done;
  if (!server.process.alive() || outcome.report === null) probe?.cancel();
  if (!server.process.alive()) {
    throw new Error(`${server.kind.name} exited during the run: ${server.process.output().trim()}`);
  }
  const cpuAfter = server.process.cpuSeconds();
  const busyAfter = machineBusySeconds();
  const coresAfter = coreBusy();
  // After the CPU figures: the probe's last read waits an interval with the server idle.
  const loopDelay = probe === null ? null : await probe.stop();
  const report = outcome.report;
  if (report === null) {
    throw new Error(
      `load against ${server.kind.name} (${workload}) ended with ${outcome.code} and no report: ${outcome.stderr.trim()}`,
    );
  }
  const seconds = report.elapsedMs / 1000;
  const serverCpuSeconds = cpuAfter - cpuBefore;
  const othersSeconds = busyBefore === null || busyAfter === null
    ? 0
    : busyAfter - busyBefore - serverCpuSeconds - outcome.cpuSeconds;
  const serverCpu = seconds > 0 ? serverCpuSeconds / seconds : 0;
  const clientCpu = outcome.wallSeconds > 0 ? outcome.cpuSeconds / outcome.wallSeconds : 0;
  const serverCoreBusy = coresBefore.server === null || coresAfter.server === null || seconds <= 0
    ? null
    : Math.min(1, (coresAfter.server - coresBefore.server) / seconds);
  const clientCoreBusy = coresBefore.client === null || coresAfter.client === null
    ? null
    : Math.min(1, (coresAfter.client - coresBefore.client) / outcome.wallSeconds);
  const unexplained = (busy: number | null, own: number) =>
    busy === null ? 0 : Math.max(0, busy - own - OWN_KERNEL_ALLOWANCE);
  const othersProcessCpu = outcome.wallSeconds > 0
    ? Math.max(0, othersSeconds / outcome.wallSeconds)
    : 0;
  const othersKernelCpu = unexplained(serverCoreBusy, serverCpu) +
    unexplained(clientCoreBusy, clientCpu);
  return {
    server: server.kind.name,
    workload,
    round,
    repliesPerSecond: report.repliesPerSecond,
    connectionsPerSecond: report.connectionsPerSecond,
    p50Us: report.latencyUs.p50,
    p99Us: report.latencyUs.p99,
    errors: report.errorsTotal,
    errorKinds: report.errors,
    checkOk: report.check.ok,
    serverCpu,
    serverCpuUsPerReply: report.replies > 0 ? (serverCpuSeconds * 1e6) / report.replies : 0,
    clientCpu,
    serverCoreBusy,
    clientCoreBusy,
    othersCpu: othersProcessCpu + othersKernelCpu,
    othersProcessCpu,
    othersKernelCpu,
    attempts: 1,
    elapsedMs: report.elapsedMs,
    loopDelay,
  };
}

/**
 * Measures one server on one workload. On this shared machine other work can take the cores
 * mid-run; such a run is run again (up to `maxAttempts`) and the last one counts, disturbed or
 * not, so the report shows how much others used.
 */
async function measure(
  server: Running,
  workload: CompareWorkload,
  round: number,
  durationMs: number,
  cores: Cores,
  maxAttempts: number,
  driver: Driver,
): Promise<Measurement> {
  for (let attempt = 1;; attempt++) {
    if (maxAttempts > 1) await waitForQuiet(QUIET_WAIT_MS);
    const started = Date.now();
    const m = await measureOnce(server, workload, round, durationMs, cores, driver);
    m.attempts = attempt;
    if (attempt > 1) extraTimeLeft -= Date.now() - started;
    if (m.othersCpu <= DISTURBED_ABOVE || attempt >= maxAttempts || extraTimeLeft <= 0) return m;
    log(
      `${workload} ${server.kind.name}: other processes used ${
        m.othersCpu.toFixed(2)
      } cores during the run; running it again`,
    );
  }
}

async function measureMemory(
  kind: ServerKind,
  root: string,
  connections: number,
  serverCore: number | null,
  clientCore: number | null,
): Promise<MemoryFigure> {
  const server = await startServer(kind, root, serverCore);
  try {
    await sleep(1000);
    const idle = server.process.rssBytes();
    const idleFiles = server.process.openFiles();
    const load = startLoad(
      [
        "--workload",
        "idle",
        "--connections",
        String(connections),
        "--port",
        String(server.process.port),
        "--duration",
        "300s",
        "--threads",
        "1",
        "--timeout",
        "10s",
      ],
      clientCore,
      400_000,
    );
    const allOpen = await load.waitFor(/open and idle/, 120_000);
    await sleep(1000);
    if (!server.process.alive()) {
      throw new Error(`${kind.name} exited while holding connections`);
    }
    const loaded = server.process.rssBytes();
    // The connections the server holds, counted on its side: its descriptors beyond idle.
    const held = server.process.openFiles() - idleFiles;
    load.interrupt();
    await load.done;
    if (!allOpen) log(`${kind.name}: only ${held} of ${connections} idle connections were held`);
    return {
      server: kind.name,
      connections: held,
      idleRssBytes: idle,
      loadedRssBytes: loaded,
      perConnectionBytes: held > 0 ? Math.round((loaded - idle) / held) : 0,
    };
  } finally {
    await server.process.stop();
  }
}

async function main(args: string[]): Promise<number> {
  // --render FILE.json: write the Markdown again from saved figures, measuring nothing.
  if (args[0] === "--render" && args[1] !== undefined) {
    const results = JSON.parse(readFileSync(args[1], "utf8")) as CompareResults;
    const out = args[1].replace(/\.json$/, "") + ".md";
    writeSection(out, "anchors", resultsMarkdown(results));
    console.log(out);
    return 0;
  }
  const started = performance.now();
  const plan = parsePlan(args);
  // Built (or found missing) once, before any server starts: a build failure is one message.
  if (plan.driver === "native") nativeClientPath();
  const pinned = availableParallelism() >= 2 && existsSync("/usr/bin/taskset");
  const serverCore = pinned ? 0 : null;
  const clientCore = pinned ? 1 : null;
  const cores: Cores = { server: serverCore, client: clientCore };
  const root = mkdtempSync(join(tmpdir(), "tallyho-compare-run-"));
  const skipped: CompareResults["skipped"] = [];
  if (plan.compile && plan.servers.some((s) => s.name === "tallyho-binary")) {
    log("building dist/tallyho with ./compile.sh");
    try {
      execFileSync(join(ROOT, "compile.sh"), [], { cwd: ROOT, stdio: "ignore" });
    } catch (error) {
      log(`compile.sh failed: ${(error as Error).message}`);
    }
  }
  const servers = plan.servers.filter((server) => {
    const reason = unavailable(server);
    if (reason !== null) skipped.push({ server: server.name, reason });
    return reason === null;
  });
  const measurements: Measurement[] = [];
  const memory: MemoryFigure[] = [];
  let failures = 0;
  const running: Running[] = [];
  // Interrupted, stop what was started rather than leave servers running on the pinned core.
  const onSignal = async (name: string) => {
    log(`${name}: stopping the servers`);
    await Promise.all([...live].map((server) => server.stop(1000)));
    process.exit(130);
  };
  process.once("SIGINT", () => onSignal("SIGINT"));
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  try {
    for (const kind of servers) {
      try {
        running.push(await startServer(kind, root, serverCore));
      } catch (error) {
        skipped.push({ server: kind.name, reason: `did not start: ${(error as Error).message}` });
        failures++;
      }
    }
    if (plan.warmup) {
      log(`warm-up: ${WARMUP_MS} ms per server and workload, not counted`);
      for (const workload of WORKLOADS) {
        for (const server of running.filter((r) => r.kind.workloads.includes(workload))) {
          await measure(server, workload, -1, WARMUP_MS, cores, 1, plan.driver).catch(() => null);
        }
      }
    }
    for (let round = 0; round < plan.rounds; round++) {
      for (const workload of WORKLOADS) {
        const turn = running.filter((r) => r.kind.workloads.includes(workload));
        // Rotate the order every round so no server always runs first or last.
        const order = turn.map((_, i) => turn[(i + round) % turn.length]!);
        for (const server of order) {
          try {
            const m = await measure(
              server,
              workload,
              round,
              plan.durationMs,
              cores,
              plan.maxAttempts,
              plan.driver,
            );
            measurements.push(m);
            log(
              `round ${round + 1}/${plan.rounds} ${workload} ${server.kind.name}: ` +
                `${m.repliesPerSecond} replies/s, ${m.connectionsPerSecond} connections/s, ` +
                `${m.serverCpuUsPerReply.toFixed(2)} us server CPU per reply, ` +
                `server CPU ${Math.round(m.serverCpu * 100)} % (core ${
                  Math.round((m.serverCoreBusy ?? 0) * 100)
                } %), client CPU ${Math.round(m.clientCpu * 100)} % (core ${
                  Math.round((m.clientCoreBusy ?? 0) * 100)
                } %), others ${m.othersCpu.toFixed(2)} cores, ${m.errors} errors${
                  m.checkOk ? "" : ", CHECK FAILED"
                }`,
            );
          } catch (error) {
            failures++;
            skipped.push({
              server: server.kind.name,
              reason: `round ${round + 1} ${workload}: ${(error as Error).message}`,
            });
          }
        }
      }
    }
  } finally {
    await Promise.all(running.map((r) => r.process.stop()));
  }
  if (plan.memory) {
    for (const server of running) {
      if (!server.kind.holdsConnections) continue;
      try {
        const figure = await measureMemory(
          server.kind,
          root,
          plan.memoryConnections,
          serverCore,
          clientCore,
        );
        memory.push(figure);
        log(
          `memory ${server.kind.name}: ${figure.perConnectionBytes} B per idle connection ` +
            `(${figure.connections} held)`,
        );
      } catch (error) {
        failures++;
        skipped.push({ server: server.kind.name, reason: `memory: ${(error as Error).message}` });
      }
    }
  }
  const results: CompareResults = {
    mode: plan.mode,
    machine: machineInfo(),
    settings: {
      rounds: plan.rounds,
      durationMs: plan.durationMs,
      closedConnections: CLOSED_CONNECTIONS,
      pipelinedConnections: PIPELINED_CONNECTIONS,
      pipelinedDepth: PIPELINED_DEPTH,
      connectConcurrency: CONNECT_CONCURRENCY,
      memoryConnections: plan.memoryConnections,
      disturbedAbove: DISTURBED_ABOVE,
      ownKernelAllowance: OWN_KERNEL_ALLOWANCE,
      maxAttempts: plan.maxAttempts,
      serverCore,
      clientCore,
      driver: plan.driver,
    },
    servers: servers.map((s) => ({ name: s.name, label: s.label, workloads: s.workloads })),
    measurements,
    memory,
    skipped,
    elapsedSeconds: (performance.now() - started) / 1000,
  };
  mkdirSync(dirname(plan.out), { recursive: true });
  writeSection(plan.out, "anchors", resultsMarkdown(results));
  writeFileSync(plan.out.replace(/\.md$/, "") + ".json", JSON.stringify(results, null, 2) + "\n");
  rmSync(root, { recursive: true, force: true });
  log(`wrote ${plan.out} in ${Math.round(results.elapsedSeconds)} s`);
  console.log(plan.out);
  return failures === 0 ? 0 : 1;
}

try {
  process.exit(await main(process.argv.slice(2)));
} catch (error) {
  console.error(`compare: ${(error as Error).message}`);
  process.exit(2);
}
