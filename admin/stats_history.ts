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
 * Each sample also holds every serving process's resident memory, CPU seconds and restarts, for
 * the dashboard's per-process charts: one ring of the same 600 rows per process index, made when
 * that index is first seen (4 numbers a row, 19,200 bytes) and dropped once its last sample has
 * left the window. A process restarted at an index goes on in that index's ring; one removed live
 * keeps its samples until they age out, like every other figure.
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

/** Bytes of one process index's ring: 600 samples x 4 numbers x 8 bytes. */
export const PROCESS_HISTORY_BYTES = HISTORY_SAMPLES * 4 * Float64Array.BYTES_PER_ELEMENT;

/** One serving process in a sample, as `/v1/stats` gave it. */
export interface HistoryProcess {
  /** The process's index, stable across its restarts. */
  index: number;
  /** Its pid when the sample was taken. */
  pid: number;
  /** Resident memory, in bytes; absent until the process first reported. */
  rssBytes?: number;
  /** CPU time used since that pid started, in seconds. */
  cpuSeconds?: number;
  /** Times the process at this index died and was restarted. */
  restarts?: number;
}

/** One sample as served: a {@linkcode SeriesPoint} with its age instead of a time of day. */
export type HistorySample = Omit<SeriesPoint, "at"> & {
  /** How long ago it was taken, in seconds. */
  ageSeconds: number;
  /** The serving processes then, by index. */
  processes: HistoryProcess[];
};

/** The body of `GET /v1/stats/history`. */
export interface HistoryView {
  /** Seconds between samples. */
  intervalSeconds: number;
  /** The most samples kept. */
  capacity: number;
  /** What the rings take in memory: the figures' and each process index's. */
  bytes: number;
  /** Oldest first. */
  samples: HistorySample[];
}

/** A bounded ring of one-second samples. */
export class StatsHistory {
  // Only its rate measurement is used; it keeps a few seconds of points of its own.
  readonly #series = new StatsSeries({ windowMs: 5000 });
  readonly #ring = new Float64Array(HISTORY_SAMPLES * FIELDS);
  // Per process index: pid, RSS, CPU seconds, restarts per row (NaN: not there or not reported),
  // and the count of samples taken when it was last there.
  readonly #processes = new Map<number, { rows: Float64Array; seenAt: number }>();
  #taken = 0;
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
    this.#recordProcesses(processes);
    this.#next = (this.#next + 1) % HISTORY_SAMPLES;
    this.#size = Math.min(this.#size + 1, HISTORY_SAMPLES);
  }

  #recordProcesses(processes: ProcessStats[]): void {
    const slot = this.#next * 4;
    this.#taken++;
    for (const { rows } of this.#processes.values()) rows.fill(NaN, slot, slot + 4);
    for (const process of processes) {
      let kept = this.#processes.get(process.index);
      if (kept === undefined) {
        kept = { rows: new Float64Array(HISTORY_SAMPLES * 4).fill(NaN), seenAt: 0 };
        this.#processes.set(process.index, kept);
      }
      kept.seenAt = this.#taken;
      kept.rows[slot] = process.pid;
      kept.rows[slot + 1] = process.rssBytes ?? NaN;
      kept.rows[slot + 2] = process.cpuSeconds ?? NaN;
      kept.rows[slot + 3] = process.restarts ?? NaN;
    }
    // An index gone (processes lowered) for a whole window has nothing left to show.
    for (const [index, { seenAt }] of this.#processes) {
      if (this.#taken - seenAt >= HISTORY_SAMPLES) this.#processes.delete(index);
    }
  }

  #processesAt(sample: number): HistoryProcess[] {
    const slot = sample * 4;
    const found: HistoryProcess[] = [];
    for (const [index, { rows }] of this.#processes) {
      const pid = rows[slot]!;
      if (Number.isNaN(pid)) continue;
      const process: HistoryProcess = { index, pid };
      if (!Number.isNaN(rows[slot + 1]!)) process.rssBytes = rows[slot + 1]!;
      if (!Number.isNaN(rows[slot + 2]!)) process.cpuSeconds = rows[slot + 2]!;
      if (!Number.isNaN(rows[slot + 3]!)) process.restarts = rows[slot + 3]!;
      found.push(process);
    }
    return found.sort((a, b) => a.index - b.index);
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
      const sample = (first + i) % HISTORY_SAMPLES;
      const row = sample * FIELDS;
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
        processes: this.#processesAt(sample),
      });
    }
    return {
      intervalSeconds: 1,
      capacity: HISTORY_SAMPLES,
      bytes: HISTORY_BYTES + this.#processes.size * PROCESS_HISTORY_BYTES,
      samples,
    };
  }
}
