/**
 * The dashboard's data handling, with no DOM: successive `GET /v1/stats` answers in, rates and
 * five-minute series out. The page and the tests import it alike.
 *
 * Rates are measured per serving process, and only when its figures change. A process reports its
 * figures to the supervisor once a second (`STATS_EVERY_MS`), on its own clock, and the page polls
 * once a second on another: two polls may see the same report, and the next one two reports.
 * Dividing by the time between polls would then draw 0, then twice the rate, at a steady load. So
 * a process's rate is its counters' increase divided by the time since they last changed, held
 * until they change again, and dropped to 0 once they have not changed for `staleMs`.
 *
 * Counter resets: a restarted process has a new pid and starts from a fresh reference (its first
 * rate is 0, never a jump); a thread whose counters go backwards (a thread restarted inside its
 * process) counts its new value as the increase; a thread that appears (a live resize) counts
 * from 0.
 *
 * @module
 */

/** The per-thread figures the dashboard reads from `/v1/stats` (see `ThreadFigures`). */
export interface ThreadSample {
  connectionsAccepted: number;
  connectionsActive: number;
  replies: number;
  lastNumber: number;
  rejectedMaxConnections: number;
  rejectedAddressCap: number;
  rejectedRate: number;
  rejectedDenied: number;
  closedFirstMessageTimeout: number;
  closedIdleTimeout: number;
  closedUnfinishedLine: number;
  closedSlowReader: number;
  closedLineTooLong: number;
  closedNumbersUnavailable: number;
  /** The longest event-loop delay over the last second or two, in ms. */
  loopDelayMaxMs: number;
}

/** The part of a `/v1/stats` answer the series are made from (a `StatsView` fits). */
export interface StatsSample {
  processes: ReadonlyArray<{ pid: number; threads: readonly ThreadSample[] }>;
}

/** The refusals counted per second, by their `/v1/stats` figure. */
export const REJECTION_REASONS = [
  "rejectedMaxConnections",
  "rejectedAddressCap",
  "rejectedRate",
  "rejectedDenied",
] as const;

/** One refusal reason. */
export type RejectionReason = typeof REJECTION_REASONS[number];

/** What the dashboard calls each refusal reason. */
export const REJECTION_LABELS: Readonly<Record<RejectionReason, string>> = {
  rejectedMaxConnections: "max connections",
  rejectedAddressCap: "per-address cap",
  rejectedRate: "rate limit",
  rejectedDenied: "allow/deny",
};

/** The closes by the server counted per second, by their `/v1/stats` figure. */
export const CLOSE_REASONS = [
  "closedFirstMessageTimeout",
  "closedIdleTimeout",
  "closedUnfinishedLine",
  "closedSlowReader",
  "closedLineTooLong",
  "closedNumbersUnavailable",
] as const;

/** One reason the server closed a connection. */
export type CloseReason = typeof CLOSE_REASONS[number];

/** What the dashboard calls each close reason. */
export const CLOSE_LABELS: Readonly<Record<CloseReason, string>> = {
  closedFirstMessageTimeout: "first-message timeout",
  closedIdleTimeout: "idle",
  closedUnfinishedLine: "unfinished line",
  closedSlowReader: "slow reader",
  closedLineTooLong: "line too long",
  closedNumbersUnavailable: "numbers unavailable",
};

/** The counters turned into rates. */
const COUNTERS = [
  "replies",
  "connectionsAccepted",
  ...REJECTION_REASONS,
  ...CLOSE_REASONS,
] as const;
type Counter = typeof COUNTERS[number];
type Rates = Record<Counter, number>;

/** One moment of the dashboard's charts. */
export interface SeriesPoint {
  /** When the sample was taken, in milliseconds since the epoch. */
  at: number;
  repliesPerSecond: number;
  /** New connections accepted per second. */
  connectionsPerSecond: number;
  /** Open connections, all processes. */
  activeConnections: number;
  /** Refusals per second, by reason. */
  rejectionsPerSecond: Record<RejectionReason, number>;
  /** The highest number handed out by a thread that is still serving. */
  lastNumber: number;
  /** Connections the server closed per second, by reason. */
  closesPerSecond: Record<CloseReason, number>;
  /** The longest event-loop delay of any thread, in ms. */
  loopDelayMaxMs: number;
}

/** A moment marked on the charts, such as a configuration change. */
export interface Annotation {
  /** In milliseconds since the epoch. */
  at: number;
  label: string;
}

/**
 * The series as uPlot takes them: times in seconds, then replies/s, new connections/s, active
 * connections, refusals/s for each of {@linkcode REJECTION_REASONS}, the last number, closes/s
 * for each of {@linkcode CLOSE_REASONS}, and the longest event-loop delay in ms.
 */
export type SeriesColumns = [number[], ...number[][]];

/** Options for {@linkcode StatsSeries}. */
export interface StatsSeriesOptions {
  /**
   * How much history is kept, in milliseconds.
   * @default {300000 (five minutes)}
   */
  windowMs?: number;
  /**
   * How long a process's figures may stay unchanged before its rates are taken as 0, in
   * milliseconds; a little over two report periods, so one missed report does not draw a dip.
   * @default {2500}
   */
  staleMs?: number;
}

interface Reference {
  /** When its figures last changed. */
  at: number;
  /** Its threads' counters then, by thread index. */
  threads: Rates[];
  /** Its figures, to see whether a new sample brings a new report. */
  signature: string;
  /** Its rates measured then, held until the next change. */
  rates: Rates;
}

function zeroRates(): Rates {
  return Object.fromEntries(COUNTERS.map((name) => [name, 0])) as Rates;
}

function countersOf(thread: ThreadSample): Rates {
  return Object.fromEntries(COUNTERS.map((name) => [name, thread[name]])) as Rates;
}

function signatureOf(threads: readonly ThreadSample[]): string {
  return threads.map((t) => `${COUNTERS.map((name) => t[name]).join(",")},${t.connectionsActive}`)
    .join(";");
}

/**
 * A counter's increase from `before` to `after`: a value lower than before means the counter
 * started again from 0, so all of it is new.
 *
 * @param before The earlier value, or undefined for a counter that did not exist then.
 * @param after The later value.
 * @returns The increase, never negative.
 */
export function counterIncrease(before: number | undefined, after: number): number {
  if (before === undefined || after < before) return after;
  return after - before;
}

/**
 * Five minutes of the dashboard's figures, from successive `/v1/stats` answers.
 *
 * @example
 * ```ts
 * const series = new StatsSeries();
 * series.add(await (await fetch("v1/stats", auth)).json(), Date.now());
 * series.latest()?.repliesPerSecond;
 * ```
 */
export class StatsSeries {
  readonly #windowMs: number;
  readonly #staleMs: number;
  #references = new Map<number, Reference>();
  #points: SeriesPoint[] = [];
  #annotations: Annotation[] = [];

  /**
   * @param options The window and the staleness limit.
   * @throws {RangeError} When either is not a positive number.
   */
  constructor(options: StatsSeriesOptions = {}) {
    this.#windowMs = options.windowMs ?? 300_000;
    this.#staleMs = options.staleMs ?? 2500;
    for (const [name, value] of [["windowMs", this.#windowMs], ["staleMs", this.#staleMs]]) {
      if (typeof value !== "number" || !(value > 0)) {
        throw new RangeError(`'${name}' must be a positive number of milliseconds: got ${value}`);
      }
    }
  }

  /**
   * Adds a sample and returns the point it makes.
   *
   * @param stats A `/v1/stats` answer.
   * @param at When it was taken, in milliseconds since the epoch.
   * @returns The new point (also the last of {@linkcode points}).
   */
  add(stats: StatsSample, at: number): SeriesPoint {
    const last = this.#points.at(-1);
    // A clock set back would make negative intervals and unordered points: start again.
    if (last !== undefined && at < last.at) {
      this.#references.clear();
      this.#points = [];
    }
    const total = zeroRates();
    const next = new Map<number, Reference>();
    let activeConnections = 0;
    let lastNumber = 0;
    let loopDelayMaxMs = 0;
    for (const process of stats.processes) {
      for (const thread of process.threads) {
        activeConnections += thread.connectionsActive;
        lastNumber = Math.max(lastNumber, thread.lastNumber);
        loopDelayMaxMs = Math.max(loopDelayMaxMs, thread.loopDelayMaxMs ?? 0);
      }
      const reference = this.#measure(this.#references.get(process.pid), process.threads, at);
      next.set(process.pid, reference);
      for (const name of COUNTERS) total[name] += reference.rates[name];
    }
    this.#references = next;
    const point: SeriesPoint = {
      at,
      repliesPerSecond: total.replies,
      connectionsPerSecond: total.connectionsAccepted,
      activeConnections,
      rejectionsPerSecond: Object.fromEntries(
        REJECTION_REASONS.map((reason) => [reason, total[reason]]),
      ) as Record<RejectionReason, number>,
      lastNumber,
      closesPerSecond: Object.fromEntries(
        CLOSE_REASONS.map((reason) => [reason, total[reason]]),
      ) as Record<CloseReason, number>,
      loopDelayMaxMs,
    };
    this.#points.push(point);
    this.#trim(at);
    return point;
  }

  /**
   * Puts points measured elsewhere (the server's `/v1/stats/history`) before the ones to come,
   * so a page opened now shows the minutes before it. Points at or after the newest one kept
   * are dropped, as are those outside the window.
   *
   * @param points Oldest first, each `at` in milliseconds since the epoch.
   */
  seed(points: readonly SeriesPoint[]): void {
    const first = this.#points[0]?.at ?? Infinity;
    const older = points.filter((point) => point.at < first);
    if (older.length === 0) return;
    this.#points.unshift(...older);
    this.#trim(this.#points.at(-1)!.at);
  }

  #measure(reference: Reference | undefined, threads: readonly ThreadSample[], at: number) {
    const signature = signatureOf(threads);
    const counters = threads.map(countersOf);
    if (reference === undefined) {
      // A process seen for the first time: nothing to measure against yet.
      return { at, threads: counters, signature, rates: zeroRates() };
    }
    if (signature !== reference.signature) {
      const seconds = (at - reference.at) / 1000;
      const rates = zeroRates();
      if (seconds > 0) {
        for (const name of COUNTERS) {
          let increase = 0;
          counters.forEach((thread, index) => {
            increase += counterIncrease(reference.threads[index]?.[name], thread[name]);
          });
          rates[name] = increase / seconds;
        }
      }
      return { at, threads: counters, signature, rates };
    }
    if (at - reference.at >= this.#staleMs) return { ...reference, at, rates: zeroRates() };
    return reference;
  }

  /**
   * Marks a moment on the charts (kept while it is inside the window).
   *
   * @param at In milliseconds since the epoch.
   * @param label What happened, shortly.
   */
  annotate(at: number, label: string): void {
    this.#annotations.push({ at, label });
    this.#annotations.sort((a, b) => a.at - b.at);
    const newest = this.#points.at(-1)?.at;
    if (newest !== undefined) this.#trim(newest);
  }

  #trim(newest: number): void {
    const oldest = newest - this.#windowMs;
    const firstKept = this.#points.findIndex((point) => point.at >= oldest);
    if (firstKept > 0) this.#points.splice(0, firstKept);
    this.#annotations = this.#annotations.filter((annotation) => annotation.at >= oldest);
  }

  /** The points inside the window, oldest first. */
  points(): readonly SeriesPoint[] {
    return this.#points;
  }

  /** The newest point, if any. */
  latest(): SeriesPoint | undefined {
    return this.#points.at(-1);
  }

  /** The annotations inside the window, oldest first. */
  annotations(): readonly Annotation[] {
    return this.#annotations;
  }

  /** The points as uPlot's columns (see {@linkcode SeriesColumns}). */
  columns(): SeriesColumns {
    const points = this.#points;
    return [
      points.map((p) => p.at / 1000),
      points.map((p) => p.repliesPerSecond),
      points.map((p) => p.connectionsPerSecond),
      points.map((p) => p.activeConnections),
      ...REJECTION_REASONS.map((reason) => points.map((p) => p.rejectionsPerSecond[reason])),
      points.map((p) => p.lastNumber),
      ...CLOSE_REASONS.map((reason) => points.map((p) => p.closesPerSecond[reason])),
      points.map((p) => p.loopDelayMaxMs),
    ];
  }
}
