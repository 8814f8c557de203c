/**
 * The seam between the admin API and the server it administers.
 *
 * The Hono app in `app.ts` knows nothing of processes, threads or runtimes: it talks to an
 * {@linkcode AdminBackend}. The supervisor implements one over its processes; `memory_backend.ts`
 * implements one in memory for tests and as a reference.
 *
 * Configuration changes are planned in one place, the server's `ConfigKeeper` (over
 * `planConfig`): a backend turns the patch into a request with `patchRequest` (patch_request.ts) and
 * hands it to its keeper from both {@linkcode AdminBackend.validateConfig} and
 * {@linkcode AdminBackend.applyConfig}, and throws what it throws, so the HTTP status of every
 * rejection is the same whoever implements the backend.
 *
 * @module
 */

import type { ValueChange } from "../server/config/config_plan.ts";
import type { ThreadFigures } from "../server/threads/thread_stats.ts";
import type { LeaseSourceStatus } from "../server/lease/lease_source.ts";
import type { Runtime } from "../server/runtime.ts";
import type { CertificateInfo } from "../server/tls/tls_files.ts";
import type { HistoryView } from "./stats_history.ts";
import type { ProcessLeasing } from "../server/process/process_leasing.ts";

/**
 * Whether the server accepts connections: `running` accepts, `paused` keeps its connections but
 * accepts no new ones, `draining` is stopping for good.
 */
export type ListenerState = "running" | "paused" | "draining";

/** What `GET /v1/info` reports. */
export interface AdminInfo {
  /** tallyho's version. */
  version: string;
  /** The runtime serving clients. */
  runtime: Runtime;
  /** The runtime's version. */
  runtimeVersion: string;
  /** The pid of the process that answers the admin API (the supervisor). */
  pid: number;
  /** Seconds since the server started. */
  uptimeSeconds: number;
  /** Whether the listener accepts connections. */
  state: ListenerState;
  /** The address clients connect to, as bound (the real port when 0 was asked for). */
  listen: { host: string; port: number };
  /** The configuration's generation: 1 at start, one more for every applied change. */
  configGeneration: number;
  /**
   * Whether new clients can be numbered; false while the number source is down and the leased
   * numbers are used up. `/readyz` answers 503 then. Absent means true.
   */
  numbersAvailable?: boolean;
  /** Where numbers come from and how leasing goes (absent for a backend without a source). */
  numbers?: LeaseSourceStatus;
  /** The listener's TLS certificate and when it expires (absent without TLS). */
  tls?: CertificateInfo;
  /** Every serving process's memory, CPU, restarts and uptime (absent without processes). */
  processes?: ProcessHealth[];
  /** The last upgrade this tree started or came from (absent when none). */
  upgrade?: UpgradeEvent;
  /** How the last reload (SIGHUP) went (absent for a backend that cannot reload). */
  reload?: ReloadOutcome;
}

/**
 * How the last reload went, as Prometheus reports its own (`prometheus_config_last_reload_*`): a
 * refused reload keeps the configuration in force and changes no generation, so this is what an
 * alert can watch.
 */
export interface ReloadOutcome {
  /** Whether the last reload was applied (or asked for what was in force); true at start. */
  successful: boolean;
  /** When the last reload was asked for, in ms since the epoch; null before the first. */
  lastAttemptAt: number | null;
  /** When the last one succeeded (at start: when the server started), in ms since the epoch. */
  lastSuccessAt: number;
  /** Why the last one was refused (absent when it succeeded). */
  reason?: string;
}

/** An upgrade as `GET /v1/info` and the dashboard show it. */
export interface UpgradeEvent {
  /**
   * In the old tree: `upgrading` while the new tree starts, `handed-over`, or `failed` (this tree
   * serves on). In the new tree: `took-over`.
   */
  state: "upgrading" | "handed-over" | "failed" | "took-over";
  /** What asked for it: `SIGUSR2` or `admin` (in the new tree: `pid N`). */
  origin: string;
  /** When it started (in the new tree: ended), in milliseconds since the epoch. */
  at: number;
  /** The new supervisor's pid. */
  pid: number;
  /** The old supervisor's pid. */
  fromPid?: number;
  /** How long the handover took, from the start until this tree stopped accepting. */
  handoverMs?: number;
  /** Why it failed. */
  reason?: string;
}

/** One serving process's figures. */
export interface ProcessStats {
  /** The process's index among its siblings, from 0; stable across restarts of that process. */
  index: number;
  /** Its operating-system pid. */
  pid: number;
  /** One entry per thread, in thread-index order (see `server/threads/thread_stats.ts`). */
  threads: ThreadFigures[];
  /** Leased numbers the process holds and has not handed out yet, as of its last report. */
  numbersRemaining?: number;
  /** Resident memory in bytes, as of its last report. */
  rssBytes?: number;
  /** CPU seconds (user and system) it has used, as of its last report. */
  cpuSeconds?: number;
  /** Times the process at this index died and was restarted since the server started. */
  restarts?: number;
  /** Seconds since this process (this pid) started. */
  uptimeSeconds?: number;
  /** Its leases from the number source: granted, blocks, failed, the last one's latency. */
  leasing?: ProcessLeasing;
}

/** One serving process's health, as `GET /v1/info` lists it. */
export type ProcessHealth = Pick<
  ProcessStats,
  | "index"
  | "pid"
  | "rssBytes"
  | "cpuSeconds"
  | "restarts"
  | "uptimeSeconds"
  | "numbersRemaining"
  | "leasing"
>;

/** The configuration in force. */
export interface ConfigSnapshot {
  /** See {@linkcode AdminInfo.configGeneration}; the admin API's ETag is made from it. */
  generation: number;
  /** The whole configuration as JSON with the flags' names as keys (`configToJson`). */
  config: Record<string, unknown>;
}

/** One key's change: its value before and after, as JSON. */
export type { ValueChange };

/** The outcome of a validated or applied patch. */
export interface ConfigChange extends ConfigSnapshot {
  /**
   * The keys whose values differ, by flag name. Empty when the patch changes nothing; then the
   * generation does not move.
   */
  changes: Record<string, ValueChange>;
  /** What was lowered to fit the host, one sentence each; empty when nothing was. */
  warnings?: string[];
}

/** Options for {@linkcode AdminBackend.applyConfig}. */
export interface ApplyConfigOptions {
  /**
   * Apply only if the configuration is still at this generation (the client's `If-Match`);
   * otherwise throw `StaleGenerationError`. The check and the change must be one step, so that no
   * other change slips in between.
   * @default {undefined: apply whatever the generation}
   */
  ifGeneration?: number | readonly number[];
}

/**
 * What the admin API needs from the server. Methods may answer synchronously or with a promise.
 *
 * Errors a method throws become HTTP statuses: `ConfigShapeError` 400 (wrong shape, unknown
 * key), `ConfigError` 422 (value out of bounds), `RestartRequiredError` 409, `StateConflictError`
 * 409, `StaleGenerationError` 412 (see `errors.ts`); anything else, `TypeError` and `RangeError`
 * included, is a bug: a 500 whose message is logged but not sent.
 */
export interface AdminBackend {
  /** Version, runtime, pid, uptime, listener state, listen address and config generation. */
  info(): AdminInfo | Promise<AdminInfo>;

  /** Every serving process's per-thread figures, processes in index order. */
  stats(): ProcessStats[] | Promise<ProcessStats[]>;

  /**
   * The last minutes of one-second samples (`stats_history.ts`); a backend without one serves an
   * empty history.
   */
  history?(): HistoryView | Promise<HistoryView>;

  /** The configuration in force and its generation. */
  config(): ConfigSnapshot | Promise<ConfigSnapshot>;

  /**
   * Checks a JSON merge patch (RFC 7396; `null` puts a key back to its default) against the
   * configuration in force, without applying it.
   *
   * @param patch The parsed request body.
   * @returns What applying it would give; the generation is the current one.
   * @throws {ConfigShapeError} For a patch that is not an object or names an unknown key.
   * @throws {ConfigError} For a value out of bounds.
   * @throws {RestartRequiredError} For a change to a key that needs a restart.
   */
  validateConfig(patch: unknown): ConfigChange | Promise<ConfigChange>;

  /**
   * Validates a patch as {@linkcode validateConfig} does and, if it passes, puts it in force on
   * every process and thread. A rejected patch changes nothing.
   *
   * @param patch The parsed request body.
   * @param options The generation the client read, if it gave one.
   * @returns The configuration now in force, its generation (one more when anything changed)
   *   and what changed.
   * @throws The errors of {@linkcode validateConfig}, and `StaleGenerationError` when
   *   `options.ifGeneration` is not the current generation.
   */
  applyConfig(patch: unknown, options?: ApplyConfigOptions): ConfigChange | Promise<ConfigChange>;

  /**
   * Stops accepting new connections; open ones keep being served. Idempotent.
   * @throws {StateConflictError} While draining.
   */
  pause(): void | Promise<void>;

  /**
   * Accepts connections again after {@linkcode pause}. Idempotent.
   * @throws {StateConflictError} While draining.
   */
  resume(): void | Promise<void>;

  /**
   * Starts a graceful stop (stop accepting, finish replies in flight, exit within
   * `drain-timeout`). Resolves once the state is `draining`, not once the drain is over, so that
   * the HTTP answer gets out before the process ends. Idempotent.
   */
  drain(): void | Promise<void>;

  /**
   * Starts an upgrade (as `kill -USR2` does): the program at the same path is started as a new
   * supervisor tree that takes the port and the numbers over. Answers at once; how it goes is in
   * `info().upgrade`. Absent from a backend that cannot upgrade.
   * @returns The upgrade as it starts.
   * @throws {StateConflictError} While an upgrade is under way or the server is draining.
   */
  upgrade?(): UpgradeEvent | Promise<UpgradeEvent>;
}
