/// <reference lib="dom" />
/**
 * The per-process charts: each serving process's resident memory, CPU (share of one core) and
 * restarts over the last five minutes, one line per process, marked with the configuration
 * changes like the other charts. The lines follow the processes: when one is added or removed
 * (a change of `processes`), the charts are made again with a line for each.
 *
 * @module
 */

import uPlot from "uplot";
import { chartOptions, type ChartSpec } from "./_charts.ts";
import { formatShare } from "./chart_layout.ts";
import { formatCount } from "./format.ts";
import type { ProcessColumns } from "./process_series.ts";
import type { Annotation } from "./stats_series.ts";

/** How many colours the page defines (`--series-1` ...). */
const COLOURS = 6;

const MIB = 1024 * 1024;
// Memory is drawn in MiB, so the axis ticks whole MiB and its labels fit ("120 MiB").
const formatMiB = (mib: number) => `${formatCount(mib)} MiB`;

const KINDS = [
  { id: "chart-process-memory", column: "memory", format: formatMiB },
  { id: "chart-process-cpu", column: "cpu", format: formatShare },
  { id: "chart-process-restarts", column: "restarts", format: formatCount },
] as const;

function spec(kind: typeof KINDS[number], indexes: readonly number[]): ChartSpec {
  return {
    id: kind.id,
    series: indexes.map((index, i) => ({
      label: `process ${index}`,
      column: i + 1,
      color: `--series-${(index % COLOURS) + 1}`,
    })),
    format: kind.format,
    fromZero: true,
  };
}

/** The three per-process charts. */
export class ProcessCharts {
  #plots: uPlot[] = [];
  #indexes = "";
  #columns: ProcessColumns = { indexes: [], memory: [[]], cpu: [[]], restarts: [[]] };
  readonly #annotations: () => readonly Annotation[];

  /**
   * Draws the charts into the elements named in the page.
   *
   * @param annotations Reads the current annotations when the charts are drawn.
   */
  constructor(annotations: () => readonly Annotation[]) {
    this.#annotations = annotations;
    this.#create();
    new ResizeObserver(() => this.#resize()).observe(document.querySelector(".charts")!);
    globalThis.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      this.#create();
    });
  }

  #create(): void {
    for (const plot of this.#plots) plot.destroy();
    const indexes = this.#columns.indexes;
    this.#indexes = indexes.join(",");
    this.#plots = KINDS.map((kind) => {
      const target = document.getElementById(kind.id)!;
      // Restarts are formatted as counts, so their axis ticks whole numbers only.
      const options = chartOptions(
        spec(kind, indexes),
        Math.max(200, target.clientWidth),
        this.#annotations,
      );
      return new uPlot(options, this.#data(kind), target);
    });
  }

  #data(kind: typeof KINDS[number]): uPlot.AlignedData {
    const [times, ...lines] = this.#columns[kind.column];
    if (kind.column !== "memory") return [times, ...lines];
    return [times, ...lines.map((line) => line.map((v) => (v === null ? null : v / MIB)))];
  }

  #resize(): void {
    this.#plots.forEach((plot, i) => {
      const width = Math.max(200, document.getElementById(KINDS[i]!.id)!.clientWidth);
      if (width !== plot.width) plot.setSize({ width, height: plot.height });
    });
  }

  /**
   * Draws new data, making the charts again when the processes changed.
   *
   * @param columns From {@linkcode ProcessSeries.columns}.
   */
  update(columns: ProcessColumns): void {
    this.#columns = columns;
    if (columns.indexes.join(",") !== this.#indexes) return this.#create();
    this.#plots.forEach((plot, i) => plot.setData(this.#data(KINDS[i]!)));
  }
}
