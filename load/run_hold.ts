/**
 * The hold workload: as many connections as asked, held at once, spread over as many client
 * processes as the open-file limit needs and over the given server and source addresses, opened
 * at a set pace with a bounded number of handshakes in flight. Each connection sends one message
 * and checks its reply; once all are held (and after `--hold`) every one is asked again and every
 * reply checked, and the numbers of all processes (and of fresh clients probing meanwhile) are
 * merged to find any repeat.
 *
 * The parent opens no held connection itself: it starts the client processes (`tallyho _hold`),
 * sums their figures into the progress line, watches the machine's memory (and stops everything
 * before it runs out), measures the server and the kernel at the peak, and merges the results.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { selfCommand } from "../server/adapters/self_command.ts";
import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { readJsonLines } from "../server/common/json_lines.ts";
import { VERSION } from "../server/common/version.ts";
import { type ProbeResult, runFreshProbes } from "./fresh_probe.ts";
import { formatCount } from "./format_report.ts";
import { type HoldConfig, holdProcesses } from "./hold_options.ts";
import { readMachineMemory, readTreeRss } from "./host_memory.ts";
import { LatencyHistogram } from "./latency_histogram.ts";
import type { ThreadResult } from "./load_engine.ts";
import type { LoadConfig } from "./load_options.ts";
import { buildReport, type LatencyFigures, type LoadReport } from "./load_report.ts";
import { SeenNumbers } from "./seen_numbers.ts";
import { split } from "./run_load.ts";
import type { FromHoldChild, HoldChildPlan, ToHoldChild, WireResult } from "./_hold_messages.ts";
import { HOLD_CHILD_COMMAND } from "./hold_child_command.ts";

/** Why the hold ended. */
export type HoldStoppedBy = "done" | "signal" | "low_memory" | "setup_timeout" | "client_died";

/** The whole report of a hold run. */
export interface HoldReport {
  tool: "tallyho load --workload hold";
  version: string;
  runtime: string;
  startedAt: string;
  target: { hosts: number; port: number; sources: number };
  connections: number;
  processes: number;
  rate: number;
  inFlight: number;
  holdMs: number;
  stoppedBy: HoldStoppedBy;
  /** Most connections held (answered once and open) at the same time. */
  held: number;
  /** From the first connect to every connection held; `null` when not all were. */
  establishMs: number | null;
  /** Connections held per second of set-up (held / establishMs, or / the set-up so far). */
  setupRate: number;
  /** The best one-interval connect rate seen. */
  peakRate: number;
  /** Held connections asked again after the hold, and those that answered. */
  askedAgain: number;
  answeredAgain: number;
  errors: Record<string, number>;
  errorsTotal: number;
  check: LoadReport["check"];
  latencyUs: LatencyFigures;
  probes: {
    source: string;
    count: number;
    answered: number;
    failed: Record<string, number>;
    latencyUs: { p50: number; p99: number; max: number };
  };
  memory: {
    /** The server tree's RSS before and at the peak, and the growth per held connection. */
    serverRssBeforeBytes: number | null;
    serverRssPeakBytes: number | null;
    serverRssPerConnection: number | null;
    /** The highest tree RSS read up to all held (each progress reading, 1 a second, and the last). */
    serverRssMaxOpeningBytes: number | null;
    /** The tree's anonymous memory (RSS less the program's shared file pages; see `TreeUsage`). */
    serverAnonBeforeBytes: number | null;
    serverAnonPeakBytes: number | null;
    serverProcesses: number | null;
    /**
     * The server tree's CPU while it held every connection and nothing else happened (the
     * fresh clients' handful aside), in % of one core: what its timers and sweeps cost.
     */
    serverHoldCpuPercent: number | null;
    /** Kernel slab growth (both ends of every loopback connection) per held connection. */
    slabPerConnection: number | null;
    /** TCP buffer memory (sockstat) at the peak. */
    tcpBufferBytes: number;
    tcpInUse: number;
    /** MemAvailable before and at the peak: what the whole run took of the machine. */
    availableBeforeBytes: number;
    availablePeakBytes: number;
    totalBytes: number;
  };
  ok: boolean;
  failure: string | null;
}

/** How a caller follows a hold run. */
export interface RunHoldHooks {
  /** The live progress line, about every `progressIntervalMs`. */
  onProgress?: (line: string) => void;
  onNote?: (line: string) => void;
  /** Ends the run early (what is held so far is measured and checked) when it resolves. */
  stop?: Promise<unknown>;
  /** @default {1000} */
  progressIntervalMs?: number;
}

interface ChildState {
  process: ChildProcess;
  held: boolean;
  exited: boolean;
  open: number;
  heldCount: number;
  connects: number;
  errors: Record<string, number>;
  result: WireResult | null;
}

const MiB = 1024 ** 2;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function toThreadResult(wire: WireResult): ThreadResult {
  const pages = new Map<number, Uint32Array>();
  for (const [index, text] of Object.entries(wire.pages)) {
    const bytes = Buffer.from(text, "base64");
    pages.set(Number(index), new Uint32Array(new Uint8Array(bytes).buffer));
  }
  return {
    transport: wire.transport,
    requests: wire.requests,
    replies: wire.replies,
    connects: wire.connects,
    completed: 0,
    unanswered: 0,
    errors: wire.errors,
    histogram: { ...wire.histogram, counts: new Float64Array(wire.histogram.counts) },
    check: wire.check,
    pages,
    activeMs: wire.activeMs,
    stoppedBy: "signal",
  };
}

function probeThread(probe: ProbeResult): ThreadResult {
  const seen = new SeenNumbers();
  let repeats = 0;
  const repeatExamples: number[] = [];
  for (const n of probe.numbers) {
    if (seen.add(n)) {
      repeats++;
      if (repeatExamples.length < 10) repeatExamples.push(n);
    }
  }
  const h = new LatencyHistogram();
  return {
    transport: "node:net",
    requests: 0,
    replies: 0,
    connects: 0,
    completed: 0,
    unanswered: 0,
    errors: {},
    histogram: { counts: h.counts, count: 0, min: h.min, max: 0, sum: 0 },
    check: {
      numbered: probe.numbers.length,
      other: 0,
      malformed: 0,
      repeats,
      decreasing: 0,
      mixed: 0,
      untracked: seen.untracked,
      repeatExamples,
    },
    pages: seen.pages,
    activeMs: 0,
    stoppedBy: "signal",
  };
}

function writeNumbers(path: string, threads: ThreadResult[]): void {
  const all = new SeenNumbers();
  for (const thread of threads) all.merge(thread.pages);
  const lines: string[] = [];
  for (const index of [...all.pages.keys()].sort((a, b) => a - b)) {
    const page = all.pages.get(index)!;
    for (let w = 0; w < page.length; w++) {
      const word = page[w]!;
      if (word === 0) continue;
      for (let b = 0; b < 32; b++) {
        if ((word & (1 << b)) !== 0) lines.push(String(index * 4096 + w * 32 + b));
      }
    }
  }
  writeFileSync(path, lines.length === 0 ? "" : lines.join("\n") + "\n");
}

/**
 * Runs the hold workload and resolves with its report. Always ends: at the set-up timeout, on
 * low memory, on `stop`, or after the hold and the second round of replies.
 *
 * @param config Validated options.
 * @param hooks Progress, notes and early stop.
 * @returns The report.
 */
export async function runHold(config: HoldConfig, hooks: RunHoldHooks = {}): Promise<HoldReport> {
  const startedAt = new Date();
  const processes = holdProcesses(config.connections, config.perProcess);
  const shares = split(config.connections, processes);
  const before = readMachineMemory();
  const serverBefore = config.serverPid === null ? null : readTreeRss(config.serverPid);
  let serverMaxOpening: number | null = null;
  let stoppedBy: HoldStoppedBy = "done";
  let stopRequested = false;
  hooks.stop?.then(() => {
    stopRequested = true;
    if (stoppedBy === "done") stoppedBy = "signal";
  });
  const self = selfCommand();
  const children: ChildState[] = [];
  let offset = 0;
  for (let index = 0; index < processes; index++) {
    const plan: HoldChildPlan = {
      index,
      host: config.hosts[0]!,
      port: config.port,
      connections: shares[index]!,
      message: Buffer.from(config.message).toString("base64"),
      greeting: config.greeting,
      timeoutMs: config.timeoutMs,
      hold: {
        ratePerSecond: config.rate / processes,
        maxConnecting: Math.max(1, Math.floor(config.inFlight / processes)),
        targets: config.hosts,
        sources: config.sources,
        offset,
      },
    };
    offset += shares[index]!;
    const proc = spawn(self.command, [...self.args, HOLD_CHILD_COMMAND, JSON.stringify(plan)], {
      stdio: ["pipe", "pipe", "inherit"],
      ...(self.argv0 === undefined ? {} : { argv0: self.argv0 }),
    });
    const state: ChildState = {
      process: proc,
      held: false,
      exited: false,
      open: 0,
      heldCount: 0,
      connects: 0,
      errors: {},
      result: null,
    };
    children.push(state);
    proc.once("exit", () => (state.exited = true));
    readJsonLines<FromHoldChild>(proc.stdout!, {
      onMessage: (message) => {
        if (message.type === "stats") {
          state.open = message.open;
          state.heldCount = message.held;
          state.connects = message.connects;
          state.errors = message.errors;
        } else if (message.type === "held") state.held = true;
        else if (message.type === "result") state.result = message.result;
        else hooks.onNote?.(`client process ${index} failed: ${message.message}`);
      },
      onEnd: () => {},
    });
  }
  const tell = (message: ToHoldChild) => {
    for (const child of children) {
      if (!child.exited) child.process.stdin?.write(JSON.stringify(message) + "\n");
    }
  };
  const started = performance.now();
  const sums = () => {
    let open = 0, held = 0, connects = 0;
    const errors: Record<string, number> = {};
    for (const child of children) {
      open += child.open;
      held += child.heldCount;
      connects += child.connects;
      for (const [kind, n] of Object.entries(child.errors)) errors[kind] = (errors[kind] ?? 0) + n;
    }
    return { open, held, connects, errors };
  };
  let peakRate = 0;
  let peakHeld = 0;
  let lastTick = { at: started, connects: 0 };
  let phase = "opening";
  let lowest = before.availableBytes;
  const tick = () => {
    const now = performance.now();
    const s = sums();
    const rate = Math.round((s.connects - lastTick.connects) / ((now - lastTick.at) / 1000));
    lastTick = { at: now, connects: s.connects };
    if (phase === "opening") peakRate = Math.max(peakRate, rate);
    peakHeld = Math.max(peakHeld, s.held);
    const memory = readMachineMemory();
    lowest = Math.min(lowest, memory.availableBytes);
    if (memory.availableBytes > 0 && memory.availableBytes < config.minFreeBytes) {
      if (stoppedBy === "done") stoppedBy = "low_memory";
      stopRequested = true;
    }
    const errorText = Object.entries(s.errors).map(([k, n]) => `${k} ${formatCount(n)}`).join(
      ", ",
    );
    const server = config.serverPid === null ? null : readTreeRss(config.serverPid);
    if (server !== null && phase === "opening") {
      serverMaxOpening = Math.max(serverMaxOpening ?? 0, server.bytes);
    }
    const serverText = server === null
      ? ""
      : ` | server ${Math.round(server.bytes / MiB)} MiB in ${server.processes} processes`;
    hooks.onProgress?.(
      `hold ${phase}: ${formatCount(s.open)} open, ${formatCount(s.held)} held of ${
        formatCount(config.connections)
      } | ${formatCount(rate)}/s | errors: ${errorText || "none"}${serverText} | free ${
        (memory.availableBytes / 1024 ** 3).toFixed(1)
      } GiB | ${((now - started) / 1000).toFixed(0)} s`,
    );
  };
  const ticker = setInterval(tick, hooks.progressIntervalMs ?? 1000);
  let establishMs: number | null = null;
  let probe: ProbeResult | null = null;
  let serverPeak: ReturnType<typeof readTreeRss> = null;
  let holdCpuPercent: number | null = null;
  let peak = before;
  try {
    // Set-up: until every process holds its share, or a reason to stop.
    while (true) {
      if (children.every((child) => child.held)) {
        establishMs = performance.now() - started;
        break;
      }
      if (stopRequested) break;
      if (children.some((child) => child.exited)) {
        stoppedBy = "client_died";
        break;
      }
      if (performance.now() - started > config.setupTimeoutMs) {
        stoppedBy = "setup_timeout";
        break;
      }
      await sleep(50);
    }
    phase = "holding";
    tick();
    serverPeak = config.serverPid === null ? null : readTreeRss(config.serverPid);
    if (serverPeak !== null) serverMaxOpening = Math.max(serverMaxOpening ?? 0, serverPeak.bytes);
    peak = readMachineMemory();
    hooks.onNote?.(
      establishMs === null
        ? `set-up ended (${stoppedBy}) with ${formatCount(sums().held)} held`
        : `all ${formatCount(config.connections)} connections held after ${
          (establishMs / 1000).toFixed(1)
        } s; holding ${config.holdMs} ms`,
    );
    if (stoppedBy === "done" || stoppedBy === "setup_timeout") {
      const holdEnds = performance.now() + config.holdMs;
      probe = await runFreshProbes(config.probes, {
        host: config.hosts[0]!,
        port: config.port,
        source: config.probeSource,
        message: config.message,
        greeting: config.greeting,
        timeoutMs: config.timeoutMs,
      }, () => stopRequested);
      const quietFrom = config.serverPid === null ? null : readTreeRss(config.serverPid);
      const quietAt = performance.now();
      while (performance.now() < holdEnds && !stopRequested) await sleep(50);
      const quietTo = config.serverPid === null ? null : readTreeRss(config.serverPid);
      const quietSeconds = (performance.now() - quietAt) / 1000;
      if (quietFrom !== null && quietTo !== null && quietSeconds >= 1) {
        holdCpuPercent = Math.round(
          (1000 * (quietTo.cpuSeconds - quietFrom.cpuSeconds)) / quietSeconds,
        ) / 10;
      }
    }
    phase = "asking";
    tell({ type: "ask" });
    // Each client process reports once every ask is answered or lost (or makes no progress for
    // a reply timeout); this only guards against one that hangs.
    const deadline = performance.now() + 10 * config.timeoutMs + 60_000;
    while (
      children.some((child) => child.result === null && !child.exited) &&
      performance.now() < deadline
    ) await sleep(50);
  } finally {
    clearInterval(ticker);
    tell({ type: "exit" });
    const exitBy = performance.now() + 10_000;
    while (children.some((child) => !child.exited) && performance.now() < exitBy) await sleep(50);
    for (const child of children) if (!child.exited) child.process.kill("SIGKILL");
  }
  const results = children.flatMap((child) => child.result === null ? [] : [child.result]);
  const threads = results.map(toThreadResult);
  if (probe !== null) threads.push(probeThread(probe));
  const merged = buildReport(
    {
      host: config.hosts[0]!,
      port: config.port,
      workload: "hold",
      connections: config.connections,
      depth: 1,
      durationMs: config.setupTimeoutMs,
      count: null,
      threads: processes,
      message: config.message,
      source: config.sources[0] ?? null,
      timeoutMs: config.timeoutMs,
      greeting: config.greeting,
    } satisfies LoadConfig,
    threads,
    { version: VERSION, runtime: `${RUNTIME} ${RUNTIME_VERSION}`, startedAt },
  );
  if (config.numbersOut !== null) writeNumbers(config.numbersOut, threads);
  const askedAgain = results.reduce((n, r) => n + r.asked, 0);
  const answeredAgain = results.reduce((n, r) => n + r.answered, 0);
  const held = Math.max(peakHeld, askedAgain);
  const setupMs = establishMs ?? performance.now() - started;
  // A set-up shorter than one progress interval has no interval rate of its own.
  peakRate = Math.max(peakRate, Math.round(held / (setupMs / 1000)));
  const perConnection = (bytes: number | null) =>
    bytes === null || held === 0 ? null : Math.round(bytes / held);
  const us = (ns: number) => Math.round(ns / 10) / 100;
  const failure = merged.check.ok === false
    ? "the reply check failed: the server repeated a number"
    : stoppedBy !== "done"
    ? `stopped before the end: ${stoppedBy}`
    : merged.errorsTotal > 0
    ? `${merged.errorsTotal} connections failed (see errors)`
    : answeredAgain !== config.connections
    ? `${config.connections - answeredAgain} connections did not answer twice`
    : probe !== null && probe.answered !== config.probes
    ? `${config.probes - probe.answered} fresh clients were not served`
    : null;
  return {
    tool: "tallyho load --workload hold",
    version: VERSION,
    runtime: `${RUNTIME} ${RUNTIME_VERSION}`,
    startedAt: startedAt.toISOString(),
    target: { hosts: config.hosts.length, port: config.port, sources: config.sources.length },
    connections: config.connections,
    processes,
    rate: config.rate,
    inFlight: config.inFlight,
    holdMs: config.holdMs,
    stoppedBy,
    held,
    establishMs: establishMs === null ? null : Math.round(establishMs),
    setupRate: Math.round(held / (setupMs / 1000)),
    peakRate,
    askedAgain,
    answeredAgain,
    errors: merged.errors,
    errorsTotal: merged.errorsTotal,
    check: merged.check,
    latencyUs: merged.latencyUs,
    probes: {
      source: config.probeSource,
      count: config.probes,
      answered: probe?.answered ?? 0,
      failed: probe?.failed ?? {},
      latencyUs: {
        p50: us(probe?.histogram.percentile(50) ?? 0),
        p99: us(probe?.histogram.percentile(99) ?? 0),
        max: us(probe?.histogram.max ?? 0),
      },
    },
    memory: {
      serverRssBeforeBytes: serverBefore?.bytes ?? null,
      serverRssPeakBytes: serverPeak?.bytes ?? null,
      serverRssPerConnection: serverBefore === null || serverPeak === null
        ? null
        : perConnection(serverPeak.bytes - serverBefore.bytes),
      serverRssMaxOpeningBytes: serverMaxOpening,
      serverAnonBeforeBytes: serverBefore?.anonBytes ?? null,
      serverAnonPeakBytes: serverPeak?.anonBytes ?? null,
      serverProcesses: serverPeak?.processes ?? null,
      serverHoldCpuPercent: holdCpuPercent,
      slabPerConnection: perConnection(peak.slabBytes - before.slabBytes),
      tcpBufferBytes: peak.tcpBufferBytes,
      tcpInUse: peak.tcpInUse,
      availableBeforeBytes: before.availableBytes,
      availablePeakBytes: Math.min(peak.availableBytes, lowest),
      totalBytes: before.totalBytes,
    },
    ok: failure === null,
    failure,
  };
}

/**
 * The hold report as lines of text.
 *
 * @param r A finished run.
 * @returns Lines.
 */
export function formatHoldReport(r: HoldReport): string[] {
  const mib = (bytes: number | null) => bytes === null ? "n/a" : `${Math.round(bytes / MiB)} MiB`;
  const m = r.memory;
  const errors = Object.entries(r.errors).map(([k, n]) => `${k} ${formatCount(n)}`).join(", ");
  const failed = Object.entries(r.probes.failed).map(([k, n]) => `${k} ${n}`).join(", ");
  return [
    `tallyho load ${r.version} on ${r.runtime}: hold, ${formatCount(r.connections)} connections ` +
    `over ${r.processes} client processes, ${r.target.hosts} server address(es), ` +
    `${r.target.sources || "kernel-chosen"} source address(es) -> port ${r.target.port}`,
    `  held        ${formatCount(r.held)} at once` +
    (r.establishMs === null ? "" : `, all after ${(r.establishMs / 1000).toFixed(1)} s`) +
    ` (${formatCount(r.setupRate)}/s sustained, best ${
      formatCount(r.peakRate)
    }/s), stopped by ${r.stoppedBy}`,
    `  again       ${formatCount(r.answeredAgain)} of ${
      formatCount(r.askedAgain)
    } held connections answered after ${r.holdMs} ms`,
    `  errors      ${errors || "none"}`,
    `  check       ${formatCount(r.check.numbered)} numbered replies, ${
      formatCount(r.check.distinctNumbers)
    } distinct numbers: ${r.check.repeats} repeats`,
    `  fresh       ${r.probes.answered} of ${r.probes.count} from ${r.probes.source} answered` +
    `, connect-to-reply p50 ${r.probes.latencyUs.p50} us, p99 ${r.probes.latencyUs.p99} us` +
    (failed ? `; failed: ${failed}` : ""),
    `  server      RSS ${mib(m.serverRssBeforeBytes)} -> ${mib(m.serverRssPeakBytes)} in ` +
    `${m.serverProcesses ?? "n/a"} processes, ${
      m.serverRssPerConnection ?? "n/a"
    } bytes per connection (highest while opening ${mib(m.serverRssMaxOpeningBytes)}; anonymous ${
      mib(m.serverAnonBeforeBytes)
    } -> ${mib(m.serverAnonPeakBytes)}); CPU while holding ${
      m.serverHoldCpuPercent ?? "n/a"
    } % of a core`,
    `  kernel      slab +${m.slabPerConnection ?? "n/a"} bytes per connection (both ends), ` +
    `TCP buffers ${mib(m.tcpBufferBytes)}, ${formatCount(m.tcpInUse)} TCP sockets`,
    `  machine     available ${mib(m.availableBeforeBytes)} -> ${mib(m.availablePeakBytes)} of ${
      mib(m.totalBytes)
    }`,
    r.failure === null ? "  ok" : `  FAILED: ${r.failure}`,
  ];
}
