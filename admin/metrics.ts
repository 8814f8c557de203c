/**
 * `GET /metrics`: the stats in Prometheus' text format (version 0.0.4), written by hand rather
 * than with prom-client, whose default collectors break on Bun and Deno.
 *
 * Counters end in `_total`, sizes are in bytes and times in seconds, and the only labels are the
 * process index, the thread index, a reason or state, a histogram bound (`le`), the number
 * source's kind and a configuration key's name, never a client's address, so the number of series is bounded by the
 * configuration.
 *
 * @module
 */

import type { StatName } from "../server/threads/thread_stats.ts";
import { LOOP_DELAY_BUCKETS, STAT_NAMES } from "../server/threads/thread_stats.ts";
import type { AdminInfo, ListenerState, ProcessStats } from "./backend.ts";
import type { ProcessMetrics } from "./process_metrics.ts";
import { parseDuration } from "../server/config/config_json.ts";
import { configSchema } from "./config_schema.ts";
import type { ProcessLeasing } from "../server/process/process_leasing.ts";

/** The `Content-Type` of the text format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

type MetricType = "counter" | "gauge" | "histogram";
type Labels = Record<string, string>;

interface Family {
  name: string;
  type: MetricType;
  help: string;
  /** Labels, value and, for a histogram, the sample's suffix (`_bucket`, `_sum`, `_count`). */
  samples: Array<[Labels, number, string?]>;
}

/** Figures counted by reason: `closedLineTooLong` -> closed, reason `line_too_long`. */
type ReasonStat = Extract<StatName, `closed${string}` | `rejected${string}`>;

/** The event-loop delay histogram's figures, written as one histogram family. */
type HistogramStat = Extract<
  StatName,
  `loopDelayLe${string}` | "loopDelaySamples" | "loopDelaySumMs"
>;

const LOOP_DELAY_HISTOGRAM = {
  name: "tallyho_event_loop_delay_seconds",
  help: "How late each thread's event loop ran a timer firing every 50 ms, since the thread " +
    "started: the time it was blocked.",
} as const;

const REASON_FAMILIES = {
  closed: {
    name: "tallyho_connections_closed_total",
    help: "Connections the server closed, by reason.",
  },
  rejected: {
    name: "tallyho_connections_rejected_total",
    help: "Connections refused, by reason.",
  },
} as const;

// Every other figure needs an entry here: adding one to STAT_NAMES without deciding its name and
// type fails `deno check`.
// `scale` turns the figure's unit into the metric's (ms into seconds).
const FIGURES: {
  readonly [K in Exclude<StatName, ReasonStat | HistogramStat>]: {
    name: string;
    type: MetricType;
    help: string;
    scale?: number;
  };
} = {
  connectionsAccepted: {
    name: "tallyho_connections_accepted_total",
    type: "counter",
    help: "Connections accepted.",
  },
  connectionsActive: {
    name: "tallyho_connections_active",
    type: "gauge",
    help: "Connections open now.",
  },
  replies: { name: "tallyho_replies_total", type: "counter", help: "Replies sent." },
  messages: {
    name: "tallyho_messages_total",
    type: "counter",
    help: "Messages received: reads in chunk framing, lines in line framing.",
  },
  bytesIn: {
    name: "tallyho_received_bytes_total",
    type: "counter",
    help: "Bytes read from clients.",
  },
  bytesOut: { name: "tallyho_sent_bytes_total", type: "counter", help: "Bytes sent to clients." },
  lastNumber: {
    name: "tallyho_last_number",
    type: "gauge",
    help: "The last number the thread handed out; 0 before any.",
  },
  acceptErrors: {
    name: "tallyho_accept_errors_total",
    type: "counter",
    help: "Failed accepts.",
  },
  readPauses: {
    name: "tallyho_read_pauses_total",
    type: "counter",
    help: "Times a connection stopped being read because its unsent replies passed " +
      "max-pending-reply-bytes.",
  },
  loopDelayP50Ms: {
    name: "tallyho_event_loop_delay_p50_seconds",
    type: "gauge",
    help: "Median event-loop delay over the last second.",
    scale: 0.001,
  },
  loopDelayP99Ms: {
    name: "tallyho_event_loop_delay_p99_seconds",
    type: "gauge",
    help: "99th percentile of the event-loop delay over the last second.",
    scale: 0.001,
  },
  loopDelayMaxMs: {
    name: "tallyho_event_loop_delay_max_seconds",
    type: "gauge",
    help: "Longest event-loop delay over the last one to two seconds.",
    scale: 0.001,
  },
  untrackedAddresses: {
    name: "tallyho_untracked_addresses_total",
    type: "counter",
    help: "Connections admitted without per-address limits because the address table was full.",
  },
  healthChecks: {
    name: "tallyho_health_checks_total",
    type: "counter",
    help: "Connections of a trusted balancer's own (proxy-from) that named no client: closed " +
      "or reset before a PROXY header, or after a LOCAL or UNKNOWN one. Its health checks, " +
      "counted apart from the clients' peer errors.",
  },
};

const STATES: readonly ListenerState[] = ["running", "paused", "draining"];

function snakeCase(camel: string): string {
  return camel.replace(/[A-Z]/g, (letter) => "_" + letter.toLowerCase()).replace(/^_/, "");
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function renderFamily(family: Family): string {
  let text = `# HELP ${family.name} ${family.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n` +
    `# TYPE ${family.name} ${family.type}\n`;
  for (const [labels, value, suffix = ""] of family.samples) {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
    text += `${family.name}${suffix}${pairs.length ? `{${pairs.join(",")}}` : ""} ` +
      `${formatValue(value)}\n`;
  }
  return text;
}

function figureFamilies(processes: ProcessStats[]): Family[] {
  const families = new Map<string, Family>();
  const familyFor = (name: string, type: MetricType, help: string): Family => {
    let family = families.get(name);
    if (!family) families.set(name, family = { name, type, help, samples: [] });
    return family;
  };
  for (const stat of STAT_NAMES) {
    if (isHistogramStat(stat)) continue;
    const kind = stat.startsWith("closed")
      ? "closed"
      : stat.startsWith("rejected")
      ? "rejected"
      : undefined;
    const figure = kind
      ? undefined
      : FIGURES[stat as Exclude<StatName, ReasonStat | HistogramStat>];
    const family = figure
      ? familyFor(figure.name, figure.type, figure.help)
      : familyFor(REASON_FAMILIES[kind!].name, "counter", REASON_FAMILIES[kind!].help);
    const scale = figure?.scale ?? 1;
    for (const process of processes) {
      process.threads.forEach((figures, thread) => {
        const labels: Labels = { process: String(process.index), thread: String(thread) };
        if (kind) labels.reason = snakeCase(stat.slice(kind.length));
        family.samples.push([labels, figures[stat] * scale]);
      });
    }
  }
  families.set(LOOP_DELAY_HISTOGRAM.name, loopDelayHistogram(processes));
  return [...families.values()].filter((family) => family.samples.length > 0);
}

function isHistogramStat(stat: StatName): stat is HistogramStat {
  return stat.startsWith("loopDelayLe") || stat === "loopDelaySamples" ||
    stat === "loopDelaySumMs";
}

/** One histogram per thread: `_bucket` by bound (in seconds), `+Inf`, `_sum` and `_count`. */
function loopDelayHistogram(processes: ProcessStats[]): Family {
  const family: Family = { ...LOOP_DELAY_HISTOGRAM, type: "histogram", samples: [] };
  for (const process of processes) {
    process.threads.forEach((figures, thread) => {
      const labels: Labels = { process: String(process.index), thread: String(thread) };
      for (const { name, boundMs } of LOOP_DELAY_BUCKETS) {
        family.samples.push([{ ...labels, le: String(boundMs / 1000) }, figures[name], "_bucket"]);
      }
      family.samples.push([{ ...labels, le: "+Inf" }, figures.loopDelaySamples, "_bucket"]);
      family.samples.push([labels, figures.loopDelaySumMs / 1000, "_sum"]);
      family.samples.push([labels, figures.loopDelaySamples, "_count"]);
    });
  }
  return family;
}

function processFamilies(metrics: ProcessMetrics): Family[] {
  const gauges: Array<[keyof ProcessMetrics, string, MetricType, string]> = [
    [
      "cpuSecondsTotal",
      "process_cpu_seconds_total",
      "counter",
      "User and system CPU time, in seconds.",
    ],
    ["residentMemoryBytes", "process_resident_memory_bytes", "gauge", "Resident memory, in bytes."],
    ["virtualMemoryBytes", "process_virtual_memory_bytes", "gauge", "Virtual memory, in bytes."],
    [
      "startTimeSeconds",
      "process_start_time_seconds",
      "gauge",
      "Start time since the Unix epoch, in seconds.",
    ],
    ["openFds", "process_open_fds", "gauge", "Open file descriptors."],
    ["maxFds", "process_max_fds", "gauge", "Limit on open file descriptors."],
  ];
  const families: Family[] = [];
  for (const [field, name, type, help] of gauges) {
    const value = metrics[field];
    if (value !== undefined) families.push({ name, type, help, samples: [[{}, value]] });
  }
  return families;
}

/** What {@linkcode renderMetrics} reports. */
export interface MetricsInput {
  /** From the backend's `info()`. */
  info: AdminInfo;
  /** From the backend's `stats()`. */
  processes: ProcessStats[];
  /** The admin process's own figures (see `readProcessMetrics`). */
  process: ProcessMetrics;
  /** The configuration in force, as `GET /v1/config` answers it, for the limits in force. */
  config?: Record<string, unknown>;
}

/**
 * Every numeric configuration key in force, one sample per key (integers as they are, durations
 * in seconds): the limits a graph of connections or closes should be read against. The keys come
 * from the schema, so the number of series is fixed.
 */
function limitFamilies(config: Record<string, unknown> | undefined): Family[] {
  if (config === undefined) return [];
  const samples: Array<[Labels, number]> = [];
  for (const [key, schema] of Object.entries(configSchema().keys)) {
    const value = config[key];
    if (schema.type === "integer" && typeof value === "number") samples.push([{ key }, value]);
    else if (schema.type === "duration") {
      try {
        samples.push([{ key }, parseDuration(key, value) / 1000]);
      } catch {
        // Not a duration (cannot happen for a configuration in force): left out.
      }
    }
  }
  if (samples.length === 0) return [];
  return [{
    name: "tallyho_config_limit",
    type: "gauge",
    help: "Each numeric configuration key in force, by its flag name; durations in seconds.",
    samples,
  }];
}

/** The number source's health and each process's leased numbers left (issue: many machines). */
function numberFamilies(info: AdminInfo, processes: ProcessStats[]): Family[] {
  const families: Family[] = [];
  const source = info.numbers;
  if (source) {
    families.push(
      {
        name: "tallyho_numbers_source_connected",
        type: "gauge",
        help: "1 while the number source can lease (Redis or an etcd member reachable), else 0.",
        samples: [[{}, source.connected ? 1 : 0]],
      },
      {
        name: "tallyho_numbers_source_info",
        type: "gauge",
        help: "Always 1; the labels name the kind of number source (memory, state-file, " +
          "redis, etcd) and, for etcd, the member leases go to now.",
        samples: [[{
          kind: source.kind ?? source.description.split(/[\s:]/, 1)[0]!,
          ...(source.member === undefined ? {} : { member: source.member }),
        }, 1]],
      },
      {
        name: "tallyho_number_leases_total",
        type: "counter",
        help: "Blocks of numbers leased from the source.",
        samples: [[{}, source.leases]],
      },
      {
        name: "tallyho_number_lease_errors_total",
        type: "counter",
        help: "Leases that failed (the source was down or refused).",
        samples: [[{}, source.leaseErrors]],
      },
      {
        name: "tallyho_number_leases_refused_total",
        type: "counter",
        help: "Leases refused because the source went backwards: they would have repeated " +
          "numbers this server already leased (a Redis key overwritten or lost).",
        samples: [[{}, source.leasesRefused ?? 0]],
      },
      {
        name: "tallyho_numbers_leased_next",
        type: "gauge",
        help: "The first number not yet leased: the source's high-water mark (with a state " +
          "file, the mark last written and fsynced).",
        samples: [[{}, source.next]],
      },
    );
    if (source.mark !== undefined) {
      families.push({
        name: "tallyho_numbers_mark",
        type: "gauge",
        help: "The highest number this server knows was leased from its source (its own " +
          "leases and what it read of a shared key); a source that went backwards must be set " +
          "at least to the highest of these over every server that shares it.",
        samples: [[{}, source.mark]],
      });
    }
    if (source.durableMark !== undefined) {
      families.push({
        name: "tallyho_numbers_durable_mark",
        type: "gauge",
        help: "The mark the state file holds, written and fsynced: the first number never " +
          "leased, where numbering resumes after a crash.",
        samples: [[{}, source.durableMark]],
      });
    }
    if (source.durableAt !== undefined && source.durableAt !== null) {
      families.push({
        name: "tallyho_numbers_durable_mark_time_seconds",
        type: "gauge",
        help: "When this server last wrote and fsynced the state file's mark, in seconds " +
          "since the epoch.",
        samples: [[{}, source.durableAt / 1000]],
      });
    }
    if (source.lastLeaseMs !== undefined && source.lastLeaseMs !== null) {
      families.push({
        name: "tallyho_number_last_lease_seconds",
        type: "gauge",
        help: "How long the last lease took, granted or failed (with a state file, its fsync).",
        samples: [[{}, source.lastLeaseMs / 1000]],
      });
    }
  }
  const remaining = processes.filter((p) => p.numbersRemaining !== undefined);
  if (remaining.length > 0) {
    families.push({
      name: "tallyho_numbers_remaining",
      type: "gauge",
      help: "Leased numbers a process holds and has not handed out yet.",
      samples: remaining.map((p) => [{ process: String(p.index) }, p.numbersRemaining!]),
    });
  }
  if (info.tls !== undefined) {
    families.push({
      name: "tallyho_tls_certificate_not_after_seconds",
      type: "gauge",
      help: "When the listener's TLS certificate expires, in seconds since the epoch.",
      samples: [[{}, info.tls.notAfterSeconds]],
    });
  }
  if (info.numbersAvailable !== undefined) {
    families.push({
      name: "tallyho_numbers_available",
      type: "gauge",
      help: "1 while every process can number new clients; 0 makes /readyz answer 503.",
      samples: [[{}, info.numbersAvailable ? 1 : 0]],
    });
  }
  return families;
}

// Each serving process's health, labelled by its index (the supervisor's own is `process_*`).
const HEALTH: ReadonlyArray<
  [keyof ProcessStats & ("rssBytes" | "cpuSeconds" | "restarts" | "uptimeSeconds"), Family]
> = [
  ["rssBytes", {
    name: "tallyho_process_resident_memory_bytes",
    type: "gauge",
    help: "A serving process's resident memory, in bytes, as of its last report.",
    samples: [],
  }],
  ["cpuSeconds", {
    name: "tallyho_process_cpu_seconds_total",
    type: "counter",
    help: "A serving process's user and system CPU time, in seconds, as of its last report.",
    samples: [],
  }],
  ["restarts", {
    name: "tallyho_process_restarts_total",
    type: "counter",
    help: "Times the serving process at this index died and was restarted.",
    samples: [],
  }],
  ["uptimeSeconds", {
    name: "tallyho_process_uptime_seconds",
    type: "gauge",
    help: "Seconds since the serving process at this index (its current pid) started.",
    samples: [],
  }],
];

// Each serving process's leases through the supervisor, labelled by its index.
const LEASING: ReadonlyArray<[keyof ProcessLeasing, Family, number]> = [
  ["leases", {
    name: "tallyho_process_number_leases_total",
    type: "counter",
    help: "Leases granted to the serving process at this index.",
    samples: [],
  }, 1],
  ["blocksLeased", {
    name: "tallyho_process_number_blocks_total",
    type: "counter",
    help: "Blocks of 4,096 numbers granted to the serving process at this index.",
    samples: [],
  }, 1],
  ["leaseErrors", {
    name: "tallyho_process_number_lease_errors_total",
    type: "counter",
    help: "Leases the serving process at this index asked for that failed.",
    samples: [],
  }, 1],
  ["lastLeaseMs", {
    name: "tallyho_process_number_last_lease_seconds",
    type: "gauge",
    help: "How long the last lease of the serving process at this index took, granted or failed.",
    samples: [],
  }, 0.001],
];

/** The last reload's outcome, named and shaped as Prometheus names its own. */
function reloadFamilies(info: AdminInfo): Family[] {
  const reload = info.reload;
  if (reload === undefined) return [];
  const families: Family[] = [
    {
      name: "tallyho_config_last_reload_successful",
      type: "gauge",
      help: "1 when the last reload (SIGHUP) was applied or asked for what was in force, 0 when " +
        "it was refused (the configuration in force stays); 1 at start.",
      samples: [[{}, reload.successful ? 1 : 0]],
    },
    {
      name: "tallyho_config_last_reload_success_timestamp_seconds",
      type: "gauge",
      help: "When the last reload succeeded (at start: when the server started), in seconds " +
        "since the epoch.",
      samples: [[{}, reload.lastSuccessAt / 1000]],
    },
  ];
  if (reload.lastAttemptAt !== null) {
    families.push({
      name: "tallyho_config_last_reload_attempt_timestamp_seconds",
      type: "gauge",
      help: "When a reload (SIGHUP) was last asked for, applied or refused, in seconds since the " +
        "epoch.",
      samples: [[{}, reload.lastAttemptAt / 1000]],
    });
  }
  return families;
}

function leasingFamilies(processes: ProcessStats[]): Family[] {
  return LEASING.map(([field, family, scale]) => ({
    ...family,
    samples: processes.flatMap((p): Array<[Labels, number]> => {
      const value = p.leasing?.[field];
      return value === undefined || value === null
        ? []
        : [[{ process: String(p.index) }, value * scale]];
    }),
  })).filter((family) => family.samples.length > 0);
}

function healthFamilies(processes: ProcessStats[]): Family[] {
  return HEALTH.map(([field, family]) => ({
    ...family,
    samples: processes.filter((p) => p[field] !== undefined).map((
      p,
    ): [Labels, number] => [{ process: String(p.index) }, p[field]!]),
  })).filter((family) => family.samples.length > 0);
}

/**
 * Renders the Prometheus text format.
 *
 * @param input The backend's info and stats and the process's figures.
 * @returns The exposition, ending in a newline.
 *
 * @example
 * ```ts
 * const text = renderMetrics({ info, processes, process: readProcessMetrics() });
 * ```
 */
export function renderMetrics({ info, processes, process, config }: MetricsInput): string {
  const families: Family[] = [
    {
      name: "tallyho_build_info",
      type: "gauge",
      help: "Always 1; the labels name the version and the runtime.",
      samples: [[{ version: info.version, runtime: info.runtime }, 1]],
    },
    {
      name: "tallyho_listener_state",
      type: "gauge",
      help: "1 for the listener's current state, 0 for the others.",
      samples: STATES.map((state) => [{ state }, state === info.state ? 1 : 0]),
    },
    {
      name: "tallyho_config_generation",
      type: "gauge",
      help: "The configuration's generation: 1 at start, one more per applied change.",
      samples: [[{}, info.configGeneration]],
    },
    ...reloadFamilies(info),
    ...figureFamilies(processes),
    ...numberFamilies(info, processes),
    ...healthFamilies(processes),
    ...leasingFamilies(processes),
    ...limitFamilies(config),
    ...processFamilies(process),
  ];
  return families.map(renderFamily).join("");
}
