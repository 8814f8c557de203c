/**
 * The section "memory" of bench/RESULTS.md, from the memory benchmark's figures.
 *
 * @module
 */

import type { MemoryRun } from "./memory_run.ts";
import { BARE_OF, isTallyho, LABELS, type MemoryServerName } from "./memory_servers.ts";
import type { ProcessMemory } from "./proc_memory.ts";

/** Everything one benchmark run produced. */
export interface MemoryResults {
  mode: "full" | "quick";
  date: string;
  seconds: number;
  machine: string;
  versions: string;
  loadBefore: string;
  loadAfter: string;
  command: string;
  runs: MemoryRun[];
  /** Runs left out, with the reason. */
  skipped: Array<{ server: MemoryServerName; connections: number; reason: string }>;
}

const count = (n: number) => n.toLocaleString("en-US");
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const ratio = (a: number, b: number | undefined) =>
  b === undefined || b <= 0 ? "-" : `${(a / b).toFixed(2)}x`;

/** A bare server's RSS a process after serving (its processes are alike: their mean). */
function afterRss(run: MemoryRun): number | undefined {
  const after = run.afterProcesses ?? [];
  return after.length === 0 ? undefined : after.reduce((sum, m) => sum + m.rss, 0) / after.length;
}

function idleRows(results: MemoryResults): string[] {
  const rows: string[] = [];
  const smallest = Math.min(...results.runs.map((run) => run.connections));
  const firstRuns = results.runs.filter((run) => run.connections === smallest);
  const bareRss = new Map<MemoryServerName, number>();
  const bareAfter = new Map<MemoryServerName, number>();
  for (const run of firstRuns) {
    if (isTallyho(run.server)) continue;
    bareRss.set(run.server, run.idle.rss / run.processes);
    const after = afterRss(run);
    if (after !== undefined) bareAfter.set(run.server, after);
  }
  const row = (run: MemoryRun, role: string, m: ProcessMemory, bare: boolean) => {
    const after = run.afterProcesses?.find((a) => a.pid === m.pid)?.rss;
    rows.push(
      `| ${run.server} | ${role} | ${mb(m.rss)} | ${mb(m.anon)} | ${mb(m.file)} | ${mb(m.pss)} | ` +
        `${mb(m.private)} | ${m.threads} | ${
          bare ? ratio(m.rss, bareRss.get(BARE_OF[run.server])) : "-"
        } | ${after === undefined ? "-" : mb(after)} | ${
          bare && after !== undefined ? ratio(after, bareAfter.get(BARE_OF[run.server])) : "-"
        } |`,
    );
  };
  for (const run of firstRuns) {
    for (const m of run.idleProcesses) {
      const supervisor = m.pid === run.idleSupervisorPid;
      const role = !isTallyho(run.server)
        ? "the process"
        : supervisor
        ? "supervisor (admin API on)"
        : "serving process (1 thread)";
      row(run, role, m, !supervisor);
      // One row per role: processes of one server are alike.
      if (!supervisor) break;
    }
  }
  return rows;
}

function heldRows(results: MemoryResults): string[] {
  const bareOf = (run: MemoryRun) =>
    results.runs.find((other) =>
      other.server === BARE_OF[run.server] && other.connections === run.connections
    );
  return results.runs.map((run) => {
    const bare = isTallyho(run.server) ? bareOf(run) : undefined;
    const errors = Object.entries(run.errors).map(([kind, n]) => `${kind} ${n}`).join(", ");
    const notes = [
      ...(run.failed > 0 ? [`${count(run.failed)} failed: ${errors}`] : []),
      ...(run.note ? [run.note] : []),
    ];
    const held = `${count(run.held)}${notes.length > 0 ? ` (${notes.join("; ")})` : ""}`;
    return `| ${run.server} | ${held} | ${run.processes} | ${mb(run.idle.rss)} (PSS ${
      mb(run.idle.pss)
    }) | ${mb(run.peakBytes)} | **${count(run.perConnectionPeak)} B** | ${
      ratio(run.perConnectionPeak, bare?.perConnectionPeak)
    } | ${mb(run.steady.rss)}${run.settled ? "" : " (not settled)"} | **${
      count(run.perConnectionSteady)
    } B** | ${ratio(run.perConnectionSteady, bare?.perConnectionSteady)} | ${
      count(run.again.answered)
    } of ${count(run.held)} | ${run.repeats === null ? "n/a" : run.repeats} |`;
  });
}

/** The goals of issue 27, each answered from the figures (yes, no, or not measured). */
function goalLines(results: MemoryResults): string[] {
  const lines: string[] = [];
  const smallest = Math.min(...results.runs.map((run) => run.connections));
  const bare = results.runs.find((run) =>
    run.server === "bare-bun" && run.connections === smallest
  );
  for (const name of ["tallyho-bun", "tallyho-binary"] as const) {
    const run = results.runs.find((r) => r.server === name && r.connections === smallest);
    const serving = run?.idleProcesses.find((m) => m.pid !== run.idleSupervisorPid);
    if (bare === undefined || serving === undefined) continue;
    const x = serving.rss / (bare.idle.rss / bare.processes);
    const after = run?.afterProcesses?.find((m) => m.pid === serving.pid)?.rss;
    const bareAfter = afterRss(bare);
    const afterText = after === undefined || bareAfter === undefined
      ? ""
      : ` (idle again after serving: ${mb(after)} against ${mb(bareAfter)}, ${
        (after / bareAfter).toFixed(2)
      }x)`;
    lines.push(
      `- ${name}: a serving process idle within 1.25x a bare \`Bun.listen\` process (RSS)? ` +
        `**${x <= 1.25 ? "yes" : "no"}**: ${mb(serving.rss)} against ${
          mb(bare.idle.rss / bare.processes)
        }, ${x.toFixed(2)}x${afterText}.`,
    );
  }
  for (const run of results.runs) {
    if (!isTallyho(run.server) || run.server === "tallyho-deno") continue;
    const base = results.runs.find((r) =>
      r.server === BARE_OF[run.server] && r.connections === run.connections
    );
    if (base === undefined || base.perConnectionPeak <= 0 || base.perConnectionSteady <= 0) {
      continue;
    }
    const peak = run.perConnectionPeak / base.perConnectionPeak;
    const steady = run.perConnectionSteady / base.perConnectionSteady;
    lines.push(
      `- ${run.server}, ${count(run.connections)} held: within 1.1x the bare server per ` +
        `connection? at the peak **${peak <= 1.1 ? "yes" : "no"}** (${peak.toFixed(2)}x), ` +
        `steady **${steady <= 1.1 ? "yes" : "no"}** (${steady.toFixed(2)}x).`,
    );
  }
  return lines;
}

/**
 * Renders the section.
 *
 * @param results The figures.
 * @returns The Markdown, without the section markers.
 */
export function memoryMarkdown(results: MemoryResults): string {
  const servers = [...new Set(results.runs.map((run) => run.server))];
  const lines = [
    "## Memory: a serving process idle, and per held connection (bench/memory.ts)",
    "",
    `Measured ${results.date} (${results.mode} mode, ${results.seconds} s) on ${results.machine}; ` +
    `${results.versions}. Load average before ${results.loadBefore}, after ${results.loadAfter} ` +
    "(a shared machine). Command: " + `\`${results.command}\`.`,
    "",
    "Method: each server is started fresh with the processes the connections need (one per " +
    "15,800 or so: 20,000 open files a process, with a quarter to spare for the SO_REUSEPORT " +
    "hash's imbalance), tallyho with `--threads 1 --idle-timeout 0 --max-connections-per-address " +
    "0` and its admin API on, the bare servers as that many processes sharing the port. Its " +
    "memory is read once it has settled (RSS within 0.5 % for 1 s), every process's peak (VmHWM) " +
    "is reset (`echo 5 > /proc/PID/clear_refs`), and the holders (bench/memory/holder.c: C, " +
    "epoll, sharing no code with the server, from source addresses of their own) open the " +
    "connections with a bounded number in flight, each sending one line and reading its " +
    "`Hello World<N>`. **Peak** is the sum of every process's VmHWM once all are held: the most " +
    "memory the opening took, the figure that decides whether a machine runs out. **Steady** is " +
    "the summed RSS once it has settled again with all of them held. Per connection = (figure - " +
    "idle RSS) / held. Then every connection is asked once more (answered again), and the first " +
    "Ns of all tallyho connections are checked for repeats (the bare servers count from 1 in each " +
    "process). Kernel socket memory is not in RSS. RSS counts the file pages of the executable " +
    "in every process that maps them, though they are in memory once: PSS (each shared page " +
    "divided among the processes sharing it) and private (pages of that process alone) say what " +
    "a process adds.",
    "",
    ...servers.map((name) => `- ${name}: ${LABELS[name]}`),
    "",
    "### Idle",
    "",
    "| server | process | RSS | anon | file | PSS | private | OS threads | vs bare (RSS) | " +
    "after serving (RSS) | vs bare, after |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...idleRows(results),
    "",
    "Idle is each process before any connection. **After serving** is its RSS again once the " +
    "run's connections have all closed and its memory has settled: by then the bare server has " +
    "compiled and loaded the code its requests ran, which tallyho's timers (its clock, lease " +
    "keeper and statistics) already ran before the first connection.",
    "",

    "### Per held connection",
    "",
    "| server | held | processes | idle (all processes) | peak | per connection at the peak | " +
    "vs bare | steady | per connection, steady | vs bare | answered again | repeats |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...heldRows(results),
  ];
  const goals = goalLines(results);
  if (goals.length > 0) lines.push("", "### Against the goals of issue 27", "", ...goals);
  if (results.skipped.length > 0) {
    lines.push(
      "",
      "Left out: " +
        results.skipped.map((s) => `${s.server} at ${count(s.connections)} (${s.reason})`).join(
          "; ",
        ) + ".",
    );
  }
  return lines.join("\n");
}
