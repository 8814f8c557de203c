/**
 * Turns the comparison's results into bench/RESULTS.md: the questions the project asks of its
 * measurements answered yes or no with the figure, then the tables they come from. Every figure
 * is computed from the measurements; nothing here is a constant.
 *
 * @module
 */

import type { CompareResults, Measurement, MemoryFigure } from "./results.ts";
import type { CompareWorkload } from "./servers.ts";
import { type Spread, spread } from "./stats.ts";
import { loopDelayMarkdown } from "./loop_delay_markdown.ts";

const count = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const TALLYHO = ["tallyho-bun", "tallyho-deno", "tallyho-binary"];
const BARE_FOR: Record<string, string> = {
  "tallyho-bun": "bare-bun",
  "tallyho-deno": "bare-deno",
  "tallyho-binary": "bare-bun",
};

/** The figure a workload is judged by. */
function figureOf(workload: CompareWorkload, m: Measurement): number {
  return workload === "connect" ? m.connectionsPerSecond : m.repliesPerSecond;
}

class Table {
  readonly #results: CompareResults;
  constructor(results: CompareResults) {
    this.#results = results;
  }

  /** Every run of a server on a workload, disturbed or not. */
  allRuns(server: string, workload: CompareWorkload): Measurement[] {
    return this.#results.measurements.filter((m) => m.server === server && m.workload === workload);
  }

  /**
   * The runs the figures come from: the undisturbed ones when there are at least two, else all
   * (the table then says how many were disturbed).
   */
  runs(server: string, workload: CompareWorkload): Measurement[] {
    const all = this.allRuns(server, workload);
    const clean = all.filter((m) => m.othersCpu <= this.#results.settings.disturbedAbove);
    return clean.length >= 2 ? clean : all;
  }

  spread(server: string, workload: CompareWorkload, pick?: (m: Measurement) => number): Spread {
    return spread(this.runs(server, workload).map(pick ?? ((m) => figureOf(workload, m))));
  }

  median(server: string, workload: CompareWorkload): number | null {
    const s = this.spread(server, workload);
    return s.n === 0 ? null : s.median;
  }

  ratio(server: string, other: string, workload: CompareWorkload): number | null {
    const a = this.median(server, workload);
    const b = this.median(other, workload);
    return a === null || b === null || b === 0 ? null : a / b;
  }

  memory(server: string): MemoryFigure | undefined {
    return this.#results.memory.find((m) => m.server === server);
  }

  measured(server: string): boolean {
    return this.#results.measurements.some((m) => m.server === server) ||
      this.#results.memory.some((m) => m.server === server);
  }
}

const fmtRatio = (r: number | null) => (r === null ? "n/a" : `${r.toFixed(2)}x`);
const fmtPct = (r: number) => `${Math.round(r * 100)} %`;
const yesNo = (ok: boolean | null) => (ok === null ? "not measured" : ok ? "**yes**" : "**no**");
const fmtSpread = (s: Spread) =>
  s.n === 0
    ? "n/a"
    : s.n === 1
    ? count.format(s.median)
    : `${count.format(s.median)} (${count.format(s.min)}-${count.format(s.max)})`;
const fmtUs = (us: number) => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(0)} us`);
const fmtBytes = (bytes: number) =>
  Math.abs(bytes) >= 2 ** 20
    ? `${(bytes / 2 ** 20).toFixed(1)} MiB`
    : `${count.format(bytes / 1024)} KiB`;

function allOk(values: Array<boolean | null>): boolean | null {
  const known = values.filter((v): v is boolean => v !== null);
  return known.length === 0 ? null : known.every((v) => v);
}

function answers(results: CompareResults, t: Table): string[] {
  const lines = [
    "| question | answer | figures (medians) |",
    "| --- | --- | --- |",
  ];
  const present = TALLYHO.filter((s) => t.measured(s));

  // 1. Pipelined throughput on one core.
  const pipe = present.map((s) => ({ s, v: t.median(s, "pipelined") }));
  lines.push(
    `| Pipelined, depth ${results.settings.pipelinedDepth}, line framing, one core: >= 3,000,000 replies/s? | ${
      yesNo(allOk(pipe.map(({ v }) => (v === null ? null : v >= 3_000_000))))
    } | ${
      pipe.map(({ s, v }) =>
        `${s} ${v === null ? "n/a" : count.format(v)}/s${cpuNote(t, s, "pipelined")}`
      ).join("; ")
    } |`,
  );

  // 2. Closed loop against Redis and the bare runtime.
  const closedAnchors = ["redis", ...new Set(present.map((s) => BARE_FOR[s]!))]
    .map((s) => `${s} ${count.format(t.median(s, "closed") ?? 0)}/s${cpuNote(t, s, "closed")}`)
    .join(", ");
  const closed = present.map((s) => {
    const vsRedis = t.ratio(s, "redis", "closed");
    const vsBare = t.ratio(s, BARE_FOR[s]!, "closed");
    const ok = vsRedis === null || vsBare === null ? null : vsRedis >= 1 && vsBare >= 0.9;
    return { s, vsRedis, vsBare, ok };
  });
  lines.push(
    `| Closed loop, ${results.settings.closedConnections} connections: >= Redis and >= 90 % of the bare runtime? | ${
      yesNo(allOk(closed.map((c) => c.ok)))
    } | ${
      closed.map((c) =>
        `${c.s} ${yesNo(c.ok).replaceAll("*", "")}: ${fmtRatio(c.vsRedis)} Redis, ${
          fmtRatio(c.vsBare)
        } ${BARE_FOR[c.s]}${cpuNote(t, c.s, "closed")}`
      ).join("; ")
    }; ${closedAnchors} |`,
  );

  // 3. Connect per request against nginx.
  const connect = present.map((s) => ({ s, r: t.ratio(s, "nginx", "connect") }));
  lines.push(
    `| Connect per request: >= nginx? | ${
      yesNo(allOk(connect.map(({ r }) => (r === null ? null : r >= 1))))
    } | ${
      connect.map(({ s, r }) => `${s} ${fmtRatio(r)} nginx${cpuNote(t, s, "connect")}`).join("; ")
    }; nginx ${count.format(t.median("nginx", "connect") ?? 0)} connections/s${
      cpuNote(t, "nginx", "connect")
    } |`,
  );

  // 4. Deno against Bun.
  const workloads: CompareWorkload[] = ["closed", "pipelined", "connect"];
  const deno = workloads.map((w) => ({ w, r: t.ratio("tallyho-deno", "tallyho-bun", w) }));
  lines.push(
    `| tallyho on Deno >= 80 % of tallyho on Bun, per workload? | ${
      yesNo(allOk(deno.map(({ r }) => (r === null ? null : r >= 0.8))))
    } | ${deno.map(({ w, r }) => `${w} ${r === null ? "n/a" : fmtPct(r)}`).join("; ")}${
      runtimeCost(t, workloads)
    } |`,
  );

  // 5. Memory per idle connection.
  const memory = present.map((s) => ({ s, m: t.memory(s) }));
  lines.push(
    `| RSS <= 1 KiB per idle connection beyond the idle server? | ${
      yesNo(allOk(memory.map(({ m }) => (m === undefined ? null : m.perConnectionBytes <= 1024))))
    } | ${
      memory.map(({ s, m }) =>
        `${s} ${m === undefined ? "n/a" : `${count.format(m.perConnectionBytes)} B`}`
      ).join("; ")
    } (${count.format(results.settings.memoryConnections)} connections) |`,
  );

  // 6. Cores for a million replies a second without pipelining.
  lines.push(
    `| Cores for 1,000,000 replies/s without pipelining (estimate) | ${coresEstimate(t)} |`,
  );
  return lines;
}

/** Median server CPU per reply of a server on a workload, or `null`. */
function cpuPerReply(t: Table, server: string, workload: CompareWorkload): number | null {
  const runs = t.runs(server, workload);
  if (runs.length === 0 || runs.some((m) => m.serverCpuUsPerReply === undefined)) return null;
  return spread(runs.map((m) => m.serverCpuUsPerReply)).median;
}

// What the runtime itself costs: bare Deno.listen against bare Bun.listen, and the CPU a reply
// costs tallyho on each (a ratio that holds whichever side set the pace).
function runtimeCost(t: Table, workloads: CompareWorkload[]): string {
  const parts = workloads.map((w) => {
    const bare = t.ratio("bare-deno", "bare-bun", w);
    const deno = cpuPerReply(t, "tallyho-deno", w);
    const bun = cpuPerReply(t, "tallyho-bun", w);
    const cpu = deno === null || bun === null || deno === 0 ? null : bun / deno;
    return bare === null && cpu === null
      ? null
      : `${w}: bare Deno ${
        bare === null ? "n/a" : fmtPct(bare)
      } of bare Bun; tallyho's server CPU per reply ${
        deno === null || bun === null
          ? "n/a"
          : `${deno.toFixed(2)} us on Deno, ${bun.toFixed(2)} us on Bun (${fmtPct(cpu!)})`
      }`;
  }).filter((p) => p !== null);
  return parts.length === 0 ? "" : `. The runtime: ${parts.join("; ")}`;
}

// A server well under a full core was not what set the pace: say so, and whether the client
// (on its own core) was the one that was full.
function cpuNote(t: Table, server: string, workload: CompareWorkload): string {
  const core = t.spread(server, workload, serverLoad);
  if (core.n === 0) return "";
  const client = t.spread(server, workload, clientLoad);
  if (core.median < 0.9) {
    return ` (server core ${fmtPct(core.median)} busy, client core ${fmtPct(client.median)})`;
  }
  // Both cores full: the figure is where server and client meet, not the server's ceiling.
  if (client.median >= 0.95) return ` (client core ${fmtPct(client.median)} busy too)`;
  return "";
}

/** How full the server's core was: its busy time with kernel work, else the process's CPU. */
function serverLoad(m: Measurement): number {
  return m.serverCoreBusy ?? m.serverCpu;
}

function clientLoad(m: Measurement): number {
  return m.clientCoreBusy ?? m.clientCpu;
}

function coresEstimate(t: Table): string {
  const rate = t.median("tallyho-bun", "closed");
  const serverCpu = t.spread("tallyho-bun", "closed", serverLoad);
  const clientCpu = t.spread("tallyho-bun", "closed", clientLoad);
  if (rate === null || serverCpu.n === 0 || serverCpu.median <= 0) return "not measured | ";
  const perServerCore = rate / Math.min(1, serverCpu.median);
  const serverCores = 1_000_000 / perServerCore;
  const perClientCore = clientCpu.median > 0 ? rate / Math.min(1, clientCpu.median) : null;
  const clientCores = perClientCore === null ? null : 1_000_000 / perClientCore;
  return `about **${Math.ceil(serverCores)}** server cores` +
    (clientCores === null ? "" : ` (+ about ${Math.ceil(clientCores)} client cores)`) +
    ` | tallyho on Bun answered ${count.format(rate)} replies/s in the closed loop with its ` +
    `core ${fmtPct(serverCpu.median)} busy (the process and the kernel's network work on that ` +
    `core), so about ${count.format(perServerCore)} replies/s per fully used core; ` +
    `1,000,000 / that = ${serverCores.toFixed(1)}. Assumes threads scale linearly with ` +
    `SO_REUSEPORT (each thread shares only one atomic counter), one request in flight per ` +
    `connection with enough connections to keep every core busy, loopback TCP (a NIC adds ` +
    `interrupt and softirq time not counted here) and clients on other cores` +
    (perClientCore === null
      ? ""
      : ` (the load generator's core was ${
        fmtPct(clientCpu.median)
      } busy, start-up included, for the same replies)`) +
    ".";
}

function workloadTable(
  results: CompareResults,
  t: Table,
  workload: CompareWorkload,
  anchor: string,
): string[] {
  const unit = workload === "connect" ? "connections/s" : "replies/s";
  const lines = [
    `| server | ${unit}: median (min-max) | server CPU per reply | runs used | p50 | p99 | server CPU (core) | client CPU (core) | others | errors | check | vs ${anchor} | vs bare runtime |`,
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const server of results.servers) {
    if (!server.workloads.includes(workload)) continue;
    const runs = t.runs(server.name, workload);
    if (runs.length === 0) continue;
    const all = t.allRuns(server.name, workload);
    const disturbed = runs.filter((m) => m.othersCpu > results.settings.disturbedAbove).length;
    const used = `${runs.length} of ${all.length}${
      disturbed > 0 ? `, ${disturbed} disturbed` : ""
    }`;
    const p50 = spread(runs.map((m) => m.p50Us)).median;
    const p99 = spread(runs.map((m) => m.p99Us)).median;
    const cpu = spread(runs.map((m) => m.serverCpu)).median;
    // Results saved before the figure existed have none.
    const perReply = runs.every((m) => m.serverCpuUsPerReply !== undefined)
      ? `${spread(runs.map((m) => m.serverCpuUsPerReply)).median.toFixed(2)} us`
      : "n/a";
    const clientCpu = spread(runs.map((m) => m.clientCpu)).median;
    const core = spread(runs.map(serverLoad)).median;
    const clientCore = spread(runs.map(clientLoad)).median;
    const others = spread(runs.map((m) => m.othersCpu)).median;
    const errors = runs.reduce((a, m) => a + m.errors, 0);
    const kinds = new Map<string, number>();
    for (const m of runs) {
      for (const [k, v] of Object.entries(m.errorKinds)) kinds.set(k, (kinds.get(k) ?? 0) + v);
    }
    const errorText = errors === 0
      ? "0"
      : `${count.format(errors)} (${
        [...kinds].map(([k, v]) => `${k} ${count.format(v)}`).join(", ")
      })`;
    const bare = BARE_FOR[server.name];
    lines.push(
      `| ${server.name} | ${fmtSpread(t.spread(server.name, workload))} | ${perReply} | ${used} | ${
        fmtUs(p50)
      } | ${fmtUs(p99)} | ${fmtPct(cpu)} (${fmtPct(core)}) | ${fmtPct(clientCpu)} (${
        fmtPct(clientCore)
      }) | ${others.toFixed(2)} | ${errorText} | ${
        runs.every((m) => m.checkOk) ? "ok" : "**FAILED**"
      } | ${server.name === anchor ? "-" : fmtRatio(t.ratio(server.name, anchor, workload))} | ${
        bare === undefined ? "-" : fmtRatio(t.ratio(server.name, bare, workload))
      } |`,
    );
  }
  return lines;
}

function memoryTable(results: CompareResults): string[] {
  const lines = [
    `| server | connections held | RSS idle | RSS with them open | per connection |`,
    "| --- | --- | --- | --- | --- |",
  ];
  for (const m of results.memory) {
    lines.push(
      `| ${m.server} | ${count.format(m.connections)} | ${fmtBytes(m.idleRssBytes)} | ${
        fmtBytes(m.loadedRssBytes)
      } | ${count.format(m.perConnectionBytes)} B |`,
    );
  }
  return lines;
}

/**
 * Renders the report.
 *
 * @param results A finished comparison.
 * @returns The Markdown text.
 */
export function resultsMarkdown(results: CompareResults): string {
  const t = new Table(results);
  const m = results.machine;
  const s = results.settings;
  const pinned = s.serverCore === null
    ? "unpinned (taskset missing or fewer than 2 cores): figures are shared-core figures"
    : `server pinned to core ${s.serverCore} (\`taskset -c ${s.serverCore}\`), load generator to core ${s.clientCore}`;
  const out: string[] = [
    `## tallyho against its anchors${results.mode === "quick" ? " (quick run)" : ""}`,
    "",
    `Generated ${m.date} by \`bun bench/compare/compare.ts${
      results.mode === "quick" ? " --quick" : ""
    }\` in ${Math.round(results.elapsedSeconds)} s. Do not edit by hand: rerun it. Raw ` +
    "figures of every run are in `RESULTS.json` beside this file.",
    "",
    "### Machine and method",
    "",
    `- ${m.cores} cores (${m.cpu}), kernel ${m.kernel}, ${m.memoryGiB} GiB, open files ${m.openFilesLimit}, ` +
    `ip_local_port_range ${m.localPortRange}, tcp_tw_reuse ${m.tcpTwReuse}.`,
    `- ${Object.entries(m.versions).map(([k, v]) => `${k} ${v}`).join("; ")}.`,
    `- ${pinned}. Every server runs one thread or process (tallyho \`--threads 1 --framing line ` +
    "--number-by message`; nginx `worker_processes 1`), so every figure is a one-core figure.",
    `- Driver: ${
      s.driver === "tallyho-load"
        ? "`tallyho load` on Bun, one thread"
        : "the native client (bench/native_client: C, one thread, epoll, checking every reply's " +
          "N for repeats as `tallyho load` does)"
    }, on 127.0.0.1. ${s.rounds} round${s.rounds === 1 ? "" : "s"} of ${
      s.durationMs / 1000
    } s per server and workload; in each round the servers take turns ` +
    "(the order rotates every round)" +
    (results.mode === "full" ? ", after one uncounted warm-up run each" : "") +
    ". Figures are medians with min-max over the rounds that other processes did not " +
    "disturb (all rounds when fewer than two were undisturbed; the tables say which); ratios " +
    "are of medians.",
    `- Closed loop: ${s.closedConnections} connections, one request in flight each. Pipelined: ` +
    `${s.pipelinedConnections} connections, batches of ${s.pipelinedDepth} lines (the next batch ` +
    `goes when the last is answered). Connect: ${s.connectConcurrency} connect-send-reply-close ` +
    "loops at once. Request `PING\\r\\n` (Redis's inline PING, a line for tallyho).",
    "- Server CPU per reply is the server process's CPU time (user + system) over the " +
    "measured window divided by the replies it sent (for connect, one reply per connection): " +
    "what a reply costs the server, whichever side set the pace. " +
    "Server CPU is the CPU time of the server process over the measured window, as a share " +
    "of one core; (core) is how busy its core was, including the kernel's loopback work that " +
    "runs there in softirq and is charged to no process. A server core well under 100 % busy " +
    "means something else (usually the client) set the pace, and the server's figure is a lower " +
    "bound. Client CPU (core) is the same for the load generator over its whole run, start-up " +
    "included. Others is the CPU (in cores) that other work used: other processes' user and " +
    "system time, plus busy time on the two pinned cores that no process was charged for beyond " +
    `${s.ownKernelAllowance} core each (a run's own loopback softirq stays under that here; ` +
    "another engineer's flood on loopback does not) " +
    "during the run: this machine is shared. " +
    (s.maxAttempts > 1
      ? `Before each run the harness waits (up to 5 s) for the machine to go quiet, and a run ` +
        `during which others used more than ${s.disturbedAbove} cores is run again, up to ` +
        `${s.maxAttempts} runs, within 5 minutes of extra time in all; the last run counts (${
          results.measurements.filter((m) => m.attempts > 1).length
        } of ${results.measurements.length} were run again; ${
          results.measurements.filter((m) => m.othersCpu > s.disturbedAbove).length
        } stayed disturbed).`
      : "Disturbed runs are not run again in this mode."),
    "",
    "### Answers",
    "",
    ...answers(results, t),
    "",
    "### Closed loop",
    "",
    ...workloadTable(results, t, "closed", "redis"),
    "",
    "### Pipelined",
    "",
    ...workloadTable(results, t, "pipelined", "redis"),
    "",
    "### Connect per request",
    "",
    ...workloadTable(results, t, "connect", "nginx"),
    "",
    ...loopDelayMarkdown(results),
    "### Memory per idle connection",
    "",
    `Each server is started fresh, its RSS read when idle, then \`tallyho load --workload idle\` ` +
    `opens ${count.format(s.memoryConnections)} connections (one process, one thread: ` +
    `${count.format(s.memoryConnections)} sockets stay under the 20,000 open files each process ` +
    "may have, and so do the server's), sends one request on each, reads the reply and holds " +
    "them; RSS is read again 1 s after the last reply. Per connection = (RSS open - RSS idle) / " +
    "connections. Kernel socket buffers are not in RSS. nginx is left out: `return` closes every " +
    "connection as soon as it has written, so it holds none.",
    "",
    ...memoryTable(results),
  ];
  if (results.skipped.length > 0) {
    out.push("", "### Left out", "");
    for (const skip of results.skipped) out.push(`- ${skip.server}: ${skip.reason}`);
  }
  out.push("");
  return out.join("\n");
}
