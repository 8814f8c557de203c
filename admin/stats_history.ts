/**
 * The last ten minutes of the dashboard's figures, one sample a second, kept by the process that
 * serves the admin API (the supervisor), so a page opened now shows what happened before it was
 * opened (`GET /v1/stats/history`).
 *
 * The rates are measured as the dashboard measures them (ui/stats_series.ts: per process, only
 * when its report changes, counter resets handled), and each sample is stored as a row of 16
 * numbers in one preallocated `Float64Array` ring: {@linkcode HISTORY_BYTES} bytes whatever
 * happens, no allocation per sample beyond the rate measurement's own.
 *
 * Times are on the monotonic clock and served as ages ("seconds ago"), so a step of the wall
 * clock never reorders the history; the page turns ages into times of day with its own clock.
 *
 * @module
 */

import type { ProcessStats } from "./backend.ts";
import {
  CLOSE_REASONS,
  type CloseReason,
  REJECTION_REASONS,
  type RejectionReason,
  type SeriesPoint,
  StatsSeries,
} from "./ui/stats_series.ts";

/** How many one-second samples are kept: ten minutes. */
export const HISTORY_SAMPLES = 600;

// at, replies/s, new connections/s, active connections, last number, 4 refusal rates, 6 close
// rates, the longest event-loop delay.
const CLOSES_AT = 5 + REJECTION_REASONS.length;
const DELAY_AT = CLOSES_AT + CLOSE_REASONS.length;
const FIELDS = DELAY_AT + 1;

/** The ring's size in bytes: 600 samples x 16 numbers x 8 bytes = 76,800. */
export const HISTORY_BYTES = HISTORY_SAMPLES * FIELDS * Float64Array.BYTES_PER_ELEMENT;

/** One sample as served: a {@linkcode SeriesPoint} with its age instead of a time of day. */
export type HistorySample = Omit<SeriesPoint, "at"> & {
  /** How long ago it was taken, in seconds. */
  ageSeconds: number;
};

/** The body of `GET /v1/stats/history`. */
export interface HistoryView {
  /** Seconds between samples. */
  intervalSeconds: number;
  /** The most samples kept. */
  capacity: number;
  /** What the ring takes in memory. */
  bytes: number;
  /** Oldest first. */
  samples: HistorySample[];
}

/** A bounded ring of one-second samples. */
export class StatsHistory {
  // Only its rate measurement is used; it keeps a few seconds of points of its own.
  readonly #series = new StatsSeries({ windowMs: 5000 });
  readonly #ring = new Float64Array(HISTORY_SAMPLES * FIELDS);
  #next = 0;
  #size = 0;

  /**
   * Adds a sample.
   *
   * @param processes A stats read from the backend.
   * @param now When it was taken, on the monotonic clock, in ms.
   */
  record(processes: ProcessStats[], now: number): void {
    const point = this.#series.add({ processes }, now);
    const row = this.#next * FIELDS;
    const ring = this.#ring;
    ring[row] = point.at;
    ring[row + 1] = point.repliesPerSecond;
    ring[row + 2] = point.connectionsPerSecond;
    ring[row + 3] = point.activeConnections;
    ring[row + 4] = point.lastNumber;
    for (const [i, reason] of REJECTION_REASONS.entries()) {
      ring[row + 5 + i] = point.rejectionsPerSecond[reason];
    }
    for (const [i, reason] of CLOSE_REASONS.entries()) {
      ring[row + CLOSES_AT + i] = point.closesPerSecond[reason];
    }
    ring[row + DELAY_AT] = point.loopDelayMaxMs;
    this.#next = (this.#next + 1) % HISTORY_SAMPLES;
    this.#size = Math.min(this.#size + 1, HISTORY_SAMPLES);
  }

  /**
   * The samples kept, oldest first.
   *
   * @param now The time to measure ages from, on the monotonic clock, in ms.
   * @returns The view `GET /v1/stats/history` serves.
   */
  view(now: number): HistoryView {
    const samples: HistorySample[] = [];
    const first = (this.#next - this.#size + HISTORY_SAMPLES) % HISTORY_SAMPLES;
    for (let i = 0; i < this.#size; i++) {
      const row = ((first + i) % HISTORY_SAMPLES) * FIELDS;
      const ring = this.#ring;
      samples.push({
        ageSeconds: Math.max(0, (now - ring[row]!) / 1000),
        repliesPerSecond: ring[row + 1]!,
        connectionsPerSecond: ring[row + 2]!,
        activeConnections: ring[row + 3]!,
        lastNumber: ring[row + 4]!,
        rejectionsPerSecond: Object.fromEntries(
          REJECTION_REASONS.map((reason, r) => [reason, ring[row + 5 + r]!]),
        ) as Record<RejectionReason, number>,
        closesPerSecond: Object.fromEntries(
          CLOSE_REASONS.map((reason, c) => [reason, ring[row + CLOSES_AT + c]!]),
        ) as Record<CloseReason, number>,
        loopDelayMaxMs: ring[row + DELAY_AT]!,
      });
    }
    return { intervalSeconds: 1, capacity: HISTORY_SAMPLES, bytes: HISTORY_BYTES, samples };
  }
}
