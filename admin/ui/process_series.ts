/**
 * Five minutes of each serving process's memory, CPU and restarts, from successive
 * `GET /v1/stats` answers, with no DOM: the page's per-process charts and the tests read it alike.
 *
 * Processes are followed by index, the slot a restarted process takes again, so a chart's line
 * for "process 1" goes on across a restart (its restarts step up there). CPU is a share of one
 * core: the increase of the process's CPU seconds over the time since they last changed, held
 * until they change again, as `stats_series.ts` does for rates and for the same reason (a process
 * reports once a second on its own clock, the page polls on another). A new pid at an index
 * starts from a fresh reference, so a restart never draws a negative or a jump.
 *
 * @module
 */

/** The per-process figures read from `/v1/stats` (a `ProcessView` fits). */
export interface ProcessSample {
  index: number;
  pid: number;
  rssBytes?: number;
  cpuSeconds?: number;
  restarts?: number;
}

/** One process at one moment; `null` where it did not report the figure. */
export interface ProcessPoint {
  rssBytes: number | null;
  /** CPU used, as a share of one core (1 = one core busy). */
  cpuShare: number | null;
  restarts: number | null;
}

/**
 * The series as uPlot takes them: `indexes` names the processes, in order; each of `memory`,
 * `cpu` and `restarts` is times in seconds then one column per process, `null` where the process
 * was not there.
 */
export interface ProcessColumns {
  indexes: number[];
  memory: [number[], ...(number | null)[][]];
  cpu: [number[], ...(number | null)[][]];
  restarts: [number[], ...(number | null)[][]];
}

/** Options for {@linkcode ProcessSeries}. */
export interface ProcessSeriesOptions {
  /**
   * How much history is kept, in milliseconds.
   * @default {300000 (five minutes)}
   */
  windowMs?: number;
  /**
   * How long a process's CPU seconds may stay unchanged before its share is taken as 0, in ms.
   * @default {2500}
   */
  staleMs?: number;
}

interface CpuReference {
  pid: number;
  at: number;
  cpuSeconds: number;
  share: number;
}

/** Five minutes of per-process figures. */
export class ProcessSeries {
  readonly #windowMs: number;
  readonly #staleMs: number;
  #points: Array<{ at: number; processes: Map<number, ProcessPoint> }> = [];
  #cpu = new Map<number, CpuReference>();

  /**
   * @param options The window and the staleness limit.
   * @throws {RangeError} When either is not a positive number.
   */
  constructor(options: ProcessSeriesOptions = {}) {
    this.#windowMs = options.windowMs ?? 300_000;
    this.#staleMs = options.staleMs ?? 2500;
    for (const [name, value] of [["windowMs", this.#windowMs], ["staleMs", this.#staleMs]]) {
      if (typeof value !== "number" || !(value > 0)) {
        throw new RangeError(`'${name}' must be a positive number of milliseconds: got ${value}`);
      }
    }
  }

  /**
   * Adds a sample.
   *
   * @param processes The `processes` of a `/v1/stats` answer.
   * @param at When it was taken, in milliseconds since the epoch.
   */
  add(processes: readonly ProcessSample[], at: number): void {
    const last = this.#points.at(-1);
    // A clock set back would make negative intervals and unordered points: start again.
    if (last !== undefined && at < last.at) {
      this.#points = [];
      this.#cpu.clear();
    }
    const point = new Map<number, ProcessPoint>();
    const cpu = new Map<number, CpuReference>();
    for (const process of processes) {
      // A process that has not reported yet (just restarted) shows 0 B: a gap, not a dip to 0.
      if (!(process.rssBytes! > 0)) {
        point.set(process.index, {
          rssBytes: null,
          cpuShare: null,
          restarts: process.restarts ?? null,
        });
        continue;
      }
      let share: number | null = null;
      if (process.cpuSeconds !== undefined) {
        const reference = this.#cpuShare(this.#cpu.get(process.index), process, at);
        cpu.set(process.index, reference);
        share = reference.share;
      }
      point.set(process.index, {
        rssBytes: process.rssBytes ?? null,
        cpuShare: share,
        restarts: process.restarts ?? null,
      });
    }
    this.#cpu = cpu;
    this.#points.push({ at, processes: point });
    const oldest = at - this.#windowMs;
    const firstKept = this.#points.findIndex((p) => p.at >= oldest);
    if (firstKept > 0) this.#points.splice(0, firstKept);
  }

  #cpuShare(reference: CpuReference | undefined, process: ProcessSample, at: number) {
    const cpuSeconds = process.cpuSeconds!;
    if (reference === undefined || reference.pid !== process.pid) {
      return { pid: process.pid, at, cpuSeconds, share: 0 };
    }
    if (cpuSeconds !== reference.cpuSeconds) {
      const seconds = (at - reference.at) / 1000;
      const share = seconds > 0 ? Math.max(0, cpuSeconds - reference.cpuSeconds) / seconds : 0;
      return { pid: process.pid, at, cpuSeconds, share };
    }
    if (at - reference.at >= this.#staleMs) return { ...reference, at, share: 0 };
    return reference;
  }

  /** When the oldest point kept was taken, in ms since the epoch; null before the first. */
  oldestAt(): number | null {
    return this.#points[0]?.at ?? null;
  }

  /** The process indexes seen in the window, in order. */
  indexes(): number[] {
    const seen = new Set<number>();
    for (const point of this.#points) for (const index of point.processes.keys()) seen.add(index);
    return [...seen].sort((a, b) => a - b);
  }

  /**
   * One figure of one process over the window, oldest first (`null` where it was not there).
   *
   * @param index The process index.
   * @param figure Which figure.
   */
  values(index: number, figure: keyof ProcessPoint): (number | null)[] {
    return this.#points.map((point) => point.processes.get(index)?.[figure] ?? null);
  }

  /** The series as uPlot's columns. */
  columns(): ProcessColumns {
    const indexes = this.indexes();
    const times = this.#points.map((point) => point.at / 1000);
    const of = (figure: keyof ProcessPoint): [number[], ...(number | null)[][]] => [
      times,
      ...indexes.map((index) => this.values(index, figure)),
    ];
    return { indexes, memory: of("rssBytes"), cpu: of("cpuShare"), restarts: of("restarts") };
  }
}
