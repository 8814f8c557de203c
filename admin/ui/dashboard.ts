/// <reference lib="dom" />
/**
 * The dashboard page: asks for the token, polls `/v1/stats` and `/v1/info` every second, and
 * drives the charts, the process table, the panels (`_config_panel.ts`, `_numbers_panel.ts`)
 * and the listener's actions. Bundled with uPlot into `bundle/dashboard.js` by `build.ts`; the
 * data handling it relies on lives in `stats_series.ts` and `config_form.ts`, which hold no DOM
 * code.
 *
 * @module
 */

import type { AdminInfo, ListenerState, UpgradeEvent } from "../backend.ts";
import type { HistoryView } from "../stats_history.ts";
import type { StatsView } from "../stats_view.ts";
import { AdminClient, AdminError } from "./_admin_client.ts";
import { Charts } from "./_charts.ts";
import { ConfigPanel } from "./_config_panel.ts";
import { $, make } from "./_dom.ts";
import { renderNumbersPanel } from "./_numbers_panel.ts";
import { ProcessCharts } from "./_process_charts.ts";
import { formatShare } from "./chart_layout.ts";
import { ProcessSeries } from "./process_series.ts";
import {
  formatBytes,
  formatCount,
  formatDelay,
  formatMs,
  formatRate,
  formatUptime,
} from "./format.ts";
import { CLOSE_REASONS, REJECTION_LABELS, REJECTION_REASONS, StatsSeries } from "./stats_series.ts";

/** Where the token is kept: this tab only, gone when it closes. */
const TOKEN_KEY = "tallyho-admin-token";
const POLL_MS = 1000;

class Dashboard {
  #client: AdminClient | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #series = new StatsSeries();
  /** Upgrades already marked on the charts, by pid and state. */
  readonly #upgradesSeen = new Set<string>();
  #charts: Charts | null = null;
  #processSeries = new ProcessSeries();
  #processCharts: ProcessCharts | null = null;
  readonly #configPanel = new ConfigPanel({
    client: () => this.#client,
    annotate: (text, render) => {
      this.#series.annotate(Date.now(), text);
      if (render) this.#renderAnnotations();
    },
  });

  start(): void {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("token") as HTMLInputElement;
      void this.#signIn(input.value.trim());
    });
    $("sign-out").addEventListener("click", () => this.#signOut(""));
    $("pause").addEventListener("click", () => void this.#action("pause"));
    $("resume").addEventListener("click", () => void this.#action("resume"));
    $("drain").addEventListener("click", () => void this.#action("drain"));
    this.#configPanel.attach();
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) void this.#signIn(saved);
    else this.#showLogin("");
  }

  // --- signing in ---------------------------------------------------------------------------

  async #signIn(token: string): Promise<void> {
    if (token === "") return this.#showLogin("Enter the admin token.");
    const client = new AdminClient(token);
    let info: AdminInfo;
    try {
      info = (await client.call<AdminInfo>("v1/info")).body;
    } catch (error) {
      // A refused token is forgotten; one that could not be tried yet is kept for a reload.
      if (error instanceof AdminError && error.status === 401) sessionStorage.removeItem(TOKEN_KEY);
      return this.#showLogin(this.#loginMessage(error));
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    this.#client = client;
    ($("token") as HTMLInputElement).value = "";
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("facts").hidden = false;
    $("actions").hidden = false;
    this.#charts ??= new Charts(() => this.#series.annotations());
    this.#processCharts ??= new ProcessCharts(() => this.#series.annotations());
    this.#renderInfo(info);
    await this.#loadHistory(client);
    await this.#configPanel.load(client);
    void this.#tick();
  }

  /** The server's last minutes, so the charts do not start empty; without them, they do. */
  async #loadHistory(client: AdminClient): Promise<void> {
    try {
      const { samples } = (await client.call<HistoryView>("v1/stats/history")).body;
      const now = Date.now();
      this.#series.seed(samples.map(({ ageSeconds, processes: _, ...point }) => ({
        ...point,
        at: now - ageSeconds * 1000,
      })));
      // The per-process charts start as far back as the others (an older server sends no
      // processes: they fill as the page polls).
      for (const { ageSeconds, processes } of samples) {
        if (processes !== undefined) this.#processSeries.add(processes, now - ageSeconds * 1000);
      }
    } catch {
      // An older server without the history: the charts fill as the page polls.
    }
  }

  #loginMessage(error: unknown): string {
    if (error instanceof AdminError && error.status === 401) {
      return `The admin API refused this token (${error.message}). Use the token the server ` +
        "was started with: the file given to --admin-token-file, TALLYHO_ADMIN_TOKEN, or the " +
        "file named in its “admin API on …” start line, which 'tallyho admin-token' prints " +
        "on the server's machine.";
    }
    const message = error instanceof Error ? error.message : String(error);
    return `${message}. Reload the page to try again.`;
  }

  #showLogin(message: string): void {
    $("dashboard").hidden = true;
    $("facts").hidden = true;
    $("actions").hidden = true;
    $("login").hidden = false;
    const error = $("login-error");
    error.textContent = message;
    error.hidden = message === "";
    ($("token") as HTMLInputElement).focus();
  }

  #signOut(message: string): void {
    clearTimeout(this.#timer);
    this.#client = null;
    sessionStorage.removeItem(TOKEN_KEY);
    this.#notice("");
    this.#showLogin(message);
  }

  // --- polling ------------------------------------------------------------------------------

  async #tick(): Promise<void> {
    const client = this.#client;
    if (client === null) return;
    const started = Date.now();
    try {
      const [stats, info] = await Promise.all([
        client.call<StatsView>("v1/stats"),
        client.call<AdminInfo>("v1/info"),
      ]);
      if (client !== this.#client) return;
      this.#series.add(stats.body, Date.now());
      this.#processSeries.add(stats.body.processes, Date.now());
      this.#renderInfo(info.body);
      this.#renderStats(stats.body);
      this.#notice("");
      await this.#configPanel.follow(info.body.configGeneration);
    } catch (error) {
      if (client !== this.#client) return;
      if (error instanceof AdminError && error.status === 401) {
        return this.#signOut(this.#loginMessage(error));
      }
      this.#notice(`${(error as Error).message}. Retrying every second.`, true);
    }
    this.#timer = setTimeout(
      () => void this.#tick(),
      Math.max(0, POLL_MS - (Date.now() - started)),
    );
  }

  /** The last reload: said only once there was one, and in red while the last was refused. */
  #renderReload(reload: AdminInfo["reload"]): void {
    const element = $("reload");
    if (reload === undefined || reload.lastAttemptAt === null) {
      element.textContent = "";
      return;
    }
    const at = clock(reload.lastAttemptAt);
    element.textContent = reload.successful
      ? `· last reload ${at} applied`
      : `· last reload ${at} refused: ${reload.reason ?? "see the log"}`;
    element.classList.toggle("error", !reload.successful);
  }

  #renderInfo(info: AdminInfo): void {
    this.#renderState(info.state);
    $("version").textContent = `tallyho ${info.version}`;
    $("runtime").textContent = `${info.runtime} ${info.runtimeVersion}`;
    $("uptime").textContent = formatUptime(info.uptimeSeconds);
    $("listen").textContent = `${info.listen.host}:${info.listen.port}`;
    $("generation").textContent = String(info.configGeneration);
    this.#renderReload(info.reload);
    this.#noteUpgrade(info.upgrade);
    const numbers = info.numbers;
    $("numbers").textContent = numbers === undefined ? "–" : [
      numbers.kind ?? numbers.description,
      numbers.lastLeaseMs == null ? null : `last lease ${formatDelay(numbers.lastLeaseMs)}`,
      numbers.leaseErrors > 0 ? `${formatCount(numbers.leaseErrors)} failed` : null,
      numbers.connected ? null : "unreachable",
    ].filter((part) => part !== null).join(", ");
    renderNumbersPanel(info, Date.now());
  }

  /** Marks an upgrade on the charts once per state it reaches (the new tree says `took-over`). */
  #noteUpgrade(upgrade: UpgradeEvent | undefined): void {
    if (upgrade === undefined) return;
    const key = `${upgrade.pid}:${upgrade.state}`;
    if (this.#upgradesSeen.has(key)) return;
    this.#upgradesSeen.add(key);
    const took = upgrade.handoverMs === undefined
      ? ""
      : ` (handover ${formatDelay(upgrade.handoverMs)})`;
    const label = upgrade.state === "took-over"
      ? `upgrade: took over from pid ${upgrade.fromPid}${took}`
      : upgrade.state === "upgrading"
      ? `upgrade: starting pid ${upgrade.pid}`
      : upgrade.state === "handed-over"
      ? `upgrade: handed over to pid ${upgrade.pid}${took}`
      : `upgrade to pid ${upgrade.pid} failed: ${upgrade.reason ?? "see the log"}`;
    this.#series.annotate(upgrade.at, label);
    this.#renderAnnotations();
  }

  #renderState(state: ListenerState): void {
    const badge = $("state");
    badge.textContent = state;
    badge.className = `badge state-${state}`;
    ($("pause") as HTMLButtonElement).disabled = state !== "running";
    ($("resume") as HTMLButtonElement).disabled = state !== "paused";
    ($("drain") as HTMLButtonElement).disabled = state === "draining";
  }

  #renderStats(stats: StatsView): void {
    const point = this.#series.latest()!;
    const rejections = REJECTION_REASONS.reduce((sum, r) => sum + point.rejectionsPerSecond[r], 0);
    $("tile-replies").textContent = formatRate(point.repliesPerSecond);
    $("tile-connections").textContent = formatRate(point.connectionsPerSecond);
    $("tile-active").textContent = formatCount(point.activeConnections);
    $("tile-rejections").textContent = formatRate(rejections);
    $("tile-rejections").title = REJECTION_REASONS.map((r) =>
      `${REJECTION_LABELS[r]}: ${formatRate(point.rejectionsPerSecond[r])}/s`
    ).join(", ");
    $("tile-last-number").textContent = formatCount(point.lastNumber);
    $("tile-loop-delay").textContent = formatDelay(stats.totals.loopDelayMaxMs);
    this.#charts?.update(this.#series.columns());
    this.#processCharts?.update(this.#processSeries.columns());
    this.#describeCharts();
    this.#renderAnnotations();
    this.#renderProcesses(stats);
  }

  /** Says in words what each chart shows, for screen readers (and the browser test). */
  #describeCharts(): void {
    const points = this.#series.points();
    const describe = (id: string, title: string, values: number[], format = formatRate) => {
      const latest = values.at(-1) ?? 0;
      const peak = values.reduce((max, value) => Math.max(max, value), 0);
      const element = $(id);
      element.setAttribute(
        "aria-label",
        `${title}, last five minutes: now ${format(latest)}, peak ${format(peak)}`,
      );
      element.dataset.latest = String(latest);
      element.dataset.peak = String(peak);
    };
    describe("chart-replies", "Replies per second", points.map((p) => p.repliesPerSecond));
    describe(
      "chart-connections",
      "New connections per second",
      points.map((p) => p.connectionsPerSecond),
    );
    describe(
      "chart-rejections",
      "Rejections per second",
      points.map((p) => REJECTION_REASONS.reduce((s, r) => s + p.rejectionsPerSecond[r], 0)),
    );
    describe("chart-last-number", "Last number", points.map((p) => p.lastNumber), formatCount);
    describe(
      "chart-loop-delay",
      "Longest event-loop delay",
      points.map((p) => p.loopDelayMaxMs),
      formatDelay,
    );
    describe(
      "chart-closed",
      "Connections closed per second",
      points.map((p) => CLOSE_REASONS.reduce((s, r) => s + p.closesPerSecond[r], 0)),
    );
    this.#describeProcessCharts();
  }

  /** The per-process charts in words: each process's latest and peak. */
  #describeProcessCharts(): void {
    const series = this.#processSeries;
    const indexes = series.indexes();
    const describe = (
      id: string,
      title: string,
      figure: "rssBytes" | "cpuShare" | "restarts",
      format: (value: number) => string,
    ) => {
      const parts = indexes.map((index) => {
        const values = series.values(index, figure).filter((v): v is number => v !== null);
        // Children report about once a second: a process seen but not measured yet says so
        // rather than "now 0 B".
        if (values.length === 0) return `process ${index} not reported yet`;
        const peak = values.reduce((max, value) => Math.max(max, value), 0);
        return `process ${index} now ${format(values.at(-1)!)}, peak ${format(peak)}`;
      });
      const element = $(id);
      element.setAttribute("aria-label", `${title}, last five minutes: ${parts.join("; ")}`);
      element.dataset.processes = indexes.join(",");
      // When its oldest point was taken (ms since the epoch), for the browser test.
      const oldest = series.oldestAt();
      if (oldest !== null) element.dataset.oldest = String(oldest);
    };
    describe("chart-process-memory", "Resident memory per process", "rssBytes", formatBytes);
    describe(
      "chart-process-cpu",
      "CPU per process",
      "cpuShare",
      formatShare,
    );
    describe("chart-process-restarts", "Restarts per process", "restarts", formatCount);
  }

  #renderAnnotations(): void {
    const items = this.#series.annotations().map((annotation) =>
      make(
        "li",
        {},
        make("time", { dateTime: new Date(annotation.at).toISOString() }, clock(annotation.at)),
        ` ${annotation.label}`,
      )
    );
    $("annotations").replaceChildren(...items);
    $("annotations-empty").hidden = items.length > 0;
  }

  #renderProcesses(stats: StatsView): void {
    const total = stats.totals.connectionsAccepted;
    const share = (accepted: number) => {
      const fraction = total > 0 ? accepted / total : 0;
      const bar = make("span", { className: "bar" }, make("span"));
      (bar.firstChild as HTMLElement).style.width = `${(fraction * 100).toFixed(1)}%`;
      return make("td", { className: "share" }, bar, `${(fraction * 100).toFixed(1)}%`);
    };
    // A process's figures are its worst thread's (stats_view.ts sumFigures).
    const delay = (figures: { loopDelayP99Ms: number; loopDelayMaxMs: number }) =>
      make(
        "td",
        { className: "delay" },
        // Each figure kept whole: on a phone the cell breaks at the slash, onto two lines at most.
        make("span", {}, formatDelay(figures.loopDelayP99Ms)),
        " / ",
        make("span", {}, formatDelay(figures.loopDelayMaxMs)),
      );
    const health = (process: StatsView["processes"][number]) =>
      process.rssBytes === undefined ? "" : [
        formatBytes(process.rssBytes),
        `CPU ${(process.cpuSeconds ?? 0).toFixed(1)} s`,
        `up ${formatUptime(process.uptimeSeconds ?? 0)}`,
        `${process.restarts ?? 0} restart${process.restarts === 1 ? "" : "s"}`,
      ].join(" · ");
    const rows: HTMLTableRowElement[] = [];
    for (const process of stats.processes) {
      rows.push(make(
        "tr",
        { className: "process" },
        make(
          "th",
          { scope: "row" },
          `process ${process.index}`,
          make("small", {}, ` pid ${process.pid}`),
          make("small", { className: "health" }, health(process)),
        ),
        make("td", {}, formatCount(process.totals.connectionsActive)),
        make("td", {}, formatCount(process.totals.connectionsAccepted)),
        share(process.totals.connectionsAccepted),
        make("td", {}, formatRate(process.totals.repliesPerSecond)),
        delay(process.totals),
      ));
      for (const thread of process.threads) {
        rows.push(make(
          "tr",
          {},
          make("th", { scope: "row", className: "thread" }, `thread ${thread.index}`),
          make("td", {}, formatCount(thread.connectionsActive)),
          make("td", {}, formatCount(thread.connectionsAccepted)),
          share(thread.connectionsAccepted),
          make("td", {}, formatRate(thread.repliesPerSecond)),
          delay(thread),
        ));
      }
    }
    $("processes").replaceChildren(...rows);
  }

  // --- listener actions ---------------------------------------------------------------------

  async #action(action: "pause" | "resume" | "drain"): Promise<void> {
    const texts = {
      pause: [
        "Pause the listener?",
        "New connections are refused until you resume; open connections keep being served.",
        "Pause",
      ],
      resume: ["Resume the listener?", "The server accepts new connections again.", "Resume"],
      drain: [
        "Drain and stop the server?",
        "It stops accepting, lets replies in flight finish and exits within its drain timeout " +
        `(${
          this.#configPanel.drainTimeout || formatMs(10_000)
        }). It cannot be started again from here.`,
        "Drain and stop",
      ],
    } as const;
    const [title, text, ok] = texts[action];
    if (!(await confirmDialog(title, text, ok)) || this.#client === null) return;
    const path = action === "drain" ? "v1/drain" : `v1/listener/${action}`;
    try {
      const { body } = await this.#client.call<{ state: ListenerState }>(path, { method: "POST" });
      this.#notice(
        action === "drain" ? "Draining: the server is stopping." : `Listener ${body.state}.`,
      );
      this.#renderState(body.state);
    } catch (error) {
      this.#notice(`Could not ${action}: ${(error as Error).message}`, true);
    }
  }

  #notice(message: string, isError = false): void {
    const notice = $("notice");
    if (notice.textContent === message) return;
    notice.textContent = message;
    notice.hidden = message === "";
    notice.classList.toggle("error", isError);
  }
}

function clock(at: number): string {
  return new Date(at).toLocaleTimeString([], { hour12: false });
}

/** Asks in a modal dialog; resolves true when the operator confirms. Escape cancels. */
function confirmDialog(title: string, text: string, ok: string): Promise<boolean> {
  const dialog = $("confirm") as HTMLDialogElement;
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  dialog.returnValue = "";
  dialog.showModal();
  // The safe choice has the focus, so Enter does not stop a server by accident.
  ($("confirm-cancel") as HTMLButtonElement).focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

new Dashboard().start();
