/**
 * The admin API's view of a running server: the supervisor's configuration, its processes'
 * figures, and the listener's state. Configuration changes run one at a time (with SIGHUP's), so
 * `If-Match` is checked against the generation the change is applied on.
 *
 * @module
 */

import process from "node:process";
import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { configToJson } from "../server/config/config_json.ts";
import { monotonicNow } from "../server/common/clock.ts";
import { type CertificateInfo, readCertificateInfo } from "../server/tls/tls_files.ts";
import type { Supervisor } from "../server/process/supervisor.ts";
import { VERSION } from "../server/common/version.ts";
import type {
  AdminBackend,
  AdminInfo,
  ApplyConfigOptions,
  ConfigChange,
  ConfigSnapshot,
  ListenerState,
  ProcessStats,
  ReloadOutcome,
  UpgradeEvent,
} from "./backend.ts";
import { outcome, PATCH_ORIGIN, patchRequest } from "./patch_request.ts";
import { StateConflictError } from "./errors.ts";
import { type HistoryView, StatsHistory } from "./stats_history.ts";

/** Options for {@linkcode SupervisorBackend}. */
export interface SupervisorBackendOptions {
  /** Starts a graceful drain of the whole server, as SIGTERM does. */
  drain: () => void;
  /**
   * Whether new clients can be numbered (false while the number source is down and no numbers
   * are left); `/readyz` answers 503 when false.
   * @default {() => true}
   */
  numbersAvailable?: () => boolean;
  /** Starts an upgrade (cli/upgrade.ts); without it the backend cannot upgrade. */
  upgrade?: () => UpgradeEvent;
  /** The last upgrade this tree started or came from. */
  lastUpgrade?: () => UpgradeEvent | null;
  /** How the last reload (SIGHUP) went. */
  lastReload?: () => ReloadOutcome;
}

/** {@linkcode AdminBackend} over a running supervisor. */
export class SupervisorBackend implements AdminBackend {
  readonly #supervisor: Supervisor;
  readonly #options: SupervisorBackendOptions;
  readonly #startedAt = monotonicNow();
  readonly #history = new StatsHistory();
  readonly #historyTimer: ReturnType<typeof setInterval>;
  #draining = false;

  /**
   * @param supervisor The running supervisor.
   * @param options Defaults and the drain hook.
   */
  constructor(supervisor: Supervisor, options: SupervisorBackendOptions) {
    this.#supervisor = supervisor;
    this.#options = options;
    // The children report once a second; sampling as often keeps one point per report (and
    // a test that makes them report faster gets its samples as fast).
    this.#historyTimer = setInterval(
      () => this.#history.record(this.stats(), monotonicNow()),
      supervisor.statsEveryMs,
    );
  }

  /** Stops sampling the history (at shutdown). */
  stop(): void {
    clearInterval(this.#historyTimer);
  }

  history(): HistoryView {
    return this.#history.view(monotonicNow());
  }

  /** The listener's state, as `/readyz` and `/v1/info` report it. */
  get state(): ListenerState {
    if (this.#draining) return "draining";
    return this.#supervisor.paused ? "paused" : "running";
  }

  info(): AdminInfo {
    const supervisor = this.#supervisor;
    return {
      version: VERSION,
      runtime: RUNTIME,
      runtimeVersion: RUNTIME_VERSION,
      pid: process.pid,
      uptimeSeconds: (monotonicNow() - this.#startedAt) / 1000,
      state: this.state,
      listen: { host: supervisor.config.host, port: supervisor.port },
      configGeneration: supervisor.generation,
      numbersAvailable: this.#options.numbersAvailable?.() ?? true,
      numbers: supervisor.source.status(),
      ...this.#tls(),
      processes: supervisor.processes().map((p) => ({
        index: p.index,
        pid: p.pid,
        rssBytes: p.rssBytes,
        cpuSeconds: p.cpuSeconds,
        restarts: p.restarts,
        uptimeSeconds: p.uptimeSeconds,
        numbersRemaining: p.numbersRemaining,
        leasing: p.leasing,
      })),
      ...this.#upgrade(),
      ...(this.#options.lastReload === undefined ? {} : { reload: this.#options.lastReload() }),
    };
  }

  #upgrade(): { upgrade?: UpgradeEvent } {
    const event = this.#options.lastUpgrade?.() ?? null;
    return event === null ? {} : { upgrade: event };
  }

  upgrade(): UpgradeEvent {
    this.#refuseWhileDraining("upgrade");
    const start = this.#options.upgrade;
    if (start === undefined) {
      throw new StateConflictError("Cannot upgrade: this server was started without upgrades");
    }
    return start();
  }

  #tls(): { tls?: CertificateInfo } {
    const file = this.#supervisor.config.tlsCert;
    const certificate = file === null ? null : readCertificateInfo(file);
    return certificate === null ? {} : { tls: certificate };
  }

  stats(): ProcessStats[] {
    return this.#supervisor.processes();
  }

  config(): ConfigSnapshot {
    return {
      generation: this.#supervisor.generation,
      config: configToJson(this.#supervisor.config),
    };
  }

  validateConfig(patch: unknown): ConfigChange {
    const plan = this.#supervisor.keeper.plan(patchRequest(patch), { origin: PATCH_ORIGIN });
    return outcome(plan);
  }

  async applyConfig(patch: unknown, options: ApplyConfigOptions = {}): Promise<ConfigChange> {
    // Resolves once every thread of every process serves with it.
    const change = await this.#supervisor.keeper.change(patchRequest(patch), {
      origin: PATCH_ORIGIN,
      ...(options.ifGeneration === undefined ? {} : { ifGeneration: options.ifGeneration }),
    });
    return outcome(change);
  }

  async pause(): Promise<void> {
    this.#refuseWhileDraining("pause");
    await this.#supervisor.setPaused(true);
  }

  async resume(): Promise<void> {
    this.#refuseWhileDraining("resume");
    await this.#supervisor.setPaused(false);
  }

  drain(): void {
    this.#draining = true;
    this.#options.drain();
  }

  #refuseWhileDraining(action: string): void {
    if (this.#draining) {
      throw new StateConflictError(`Cannot ${action} the listener: the server is draining`);
    }
  }
}
