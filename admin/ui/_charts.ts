/// <reference lib="dom" />
/**
 * The dashboard's six time-series charts, drawn by uPlot, with the configuration changes marked
 * on them. Colours come from the page's CSS custom properties, so the charts follow dark mode.
 *
 * @module
 */

import uPlot from "uplot";
import type { Annotation, SeriesColumns } from "./stats_series.ts";
import {
  CLOSE_LABELS,
  CLOSE_REASONS,
  REJECTION_LABELS,
  REJECTION_REASONS,
} from "./stats_series.ts";
import { formatCount, formatDelay, formatRate } from "./format.ts";
import {
  axisWidth,
  COUNT_INCREMENTS,
  formatShare,
  placeLabels,
  SHARE_INCREMENTS,
} from "./chart_layout.ts";

/** The x axis spans at most this much... */
const WINDOW_SECONDS = 300;
/**
 * ...and at least this much: a page with only a few seconds of data (a server started just now)
 * draws them across the minute rather than squeezed into the last pixels of five minutes.
 */
const MIN_SPAN_SECONDS = 60;

/** One line of a chart. */
export interface SeriesSpec {
  label: string;
  /** Index into {@linkcode SeriesColumns}. */
  column: number;
  /** CSS custom property holding its colour. */
  color: string;
  /** The scale it is drawn on; `y` unless a second axis is wanted. */
  scale?: string;
}

/** One chart: where it is drawn, its lines and how its values read. */
export interface ChartSpec {
  /** The element's id the chart is drawn in. */
  id: string;
  series: SeriesSpec[];
  format: (value: number) => string;
  /** Formats for scales other than `y`, by scale. */
  scaleFormats?: Record<string, (value: number) => string>;
  /** Whether the y axis starts at 0 (rates and counts do; the last number does not). */
  fromZero: boolean;
}

const CHARTS: ChartSpec[] = [
  {
    id: "chart-replies",
    series: [{ label: "replies/s", column: 1, color: "--series-1" }],
    format: formatRate,
    fromZero: true,
  },
  {
    id: "chart-connections",
    series: [
      { label: "new/s", column: 2, color: "--series-1" },
      { label: "active", column: 3, color: "--series-2", scale: "active" },
    ],
    format: formatRate,
    scaleFormats: { active: formatCount },
    fromZero: true,
  },
  {
    id: "chart-rejections",
    series: REJECTION_REASONS.map((reason, index) => ({
      label: REJECTION_LABELS[reason],
      column: 4 + index,
      color: `--series-${index + 1}`,
    })),
    format: formatRate,
    fromZero: true,
  },
  {
    id: "chart-last-number",
    series: [{ label: "last number", column: 8, color: "--series-3" }],
    format: formatCount,
    fromZero: false,
  },
  {
    id: "chart-closed",
    series: CLOSE_REASONS.map((reason, index) => ({
      label: CLOSE_LABELS[reason],
      column: 9 + index,
      color: `--series-${index + 1}`,
    })),
    format: formatRate,
    fromZero: true,
  },
  {
    id: "chart-loop-delay",
    series: [{ label: "worst thread", column: 15, color: "--series-2" }],
    format: formatDelay,
    fromZero: true,
  },
];

function clockTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  const minutes = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return date.getSeconds() === 0 ? minutes : `${minutes}:${pad(date.getSeconds())}`;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

function annotationsPlugin(annotations: () => readonly Annotation[]): uPlot.Plugin {
  return {
    hooks: {
      draw: [(u) => {
        const { ctx } = u;
        const { left, top, width, height } = u.bbox;
        const ratio = globalThis.devicePixelRatio || 1;
        ctx.save();
        ctx.strokeStyle = cssVar("--annotation");
        ctx.fillStyle = cssVar("--annotation");
        ctx.lineWidth = ratio;
        ctx.setLineDash([4 * ratio, 3 * ratio]);
        ctx.font = `${11 * ratio}px system-ui, sans-serif`;
        // uPlot leaves these as its last axis label set them.
        ctx.textAlign = "left";
        ctx.textBaseline = "alphabetic";
        const gap = 4 * ratio;
        const lineHeight = 13 * ratio;
        const visible: Array<{ x: number; label: string }> = [];
        for (const annotation of annotations()) {
          const x = Math.round(u.valToPos(annotation.at / 1000, "x", true));
          if (x < left || x > left + width) continue;
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          // Cut to fit the wider side of its line inside the plot.
          const room = Math.max(left + width - x - gap, x - gap - left);
          let label = annotation.label;
          while (label.length > 1 && ctx.measureText(label).width > room) {
            label = label.slice(0, -2) + "…";
          }
          visible.push({ x, label });
        }
        // Labels close together go on rows below each other instead of over each other; one
        // with no room left in three rows is left out (its line stays, and the list under the
        // charts names every change).
        const places = placeLabels(
          visible.map(({ x, label }) => ({ x, width: ctx.measureText(label).width })),
          left,
          left + width,
          { gap, rows: 3 },
        );
        places.forEach((place, i) => {
          if (place === null) return;
          ctx.fillText(visible[i]!.label, place.textX, top + 12 * ratio + place.row * lineHeight);
        });
        ctx.restore();
      }],
    },
  };
}

/**
 * The uPlot options of a chart, shared by the per-process charts (`_process_charts.ts`).
 *
 * @param spec The chart.
 * @param width Its width in CSS pixels.
 * @param annotations Reads the configuration changes to mark on it.
 * @returns uPlot's options.
 */
export function chartOptions(
  spec: ChartSpec,
  width: number,
  annotations: () => readonly Annotation[],
): uPlot.Options {
  const axisColor = cssVar("--muted");
  const gridColor = cssVar("--grid");
  const axis = (scale: string, side: 1 | 3): uPlot.Axis => {
    const format = spec.scaleFormats?.[scale] ?? spec.format;
    return {
      scale,
      side,
      stroke: axisColor,
      grid: { show: side === 3, stroke: gridColor, width: 1 },
      ticks: { stroke: gridColor, width: 1 },
      values: (_u, values) => values.map((value) => format(value)),
      // As wide as its widest label ("150 ms", "1,200 MiB"), measured in the axis' own font.
      size: (u, values, axisIndex) => {
        const { font, ticks, gap } = u.axes[axisIndex]!;
        u.ctx.font = (Array.isArray(font) ? font[0] : font) as string;
        const ratio = globalThis.devicePixelRatio || 1;
        return axisWidth(
          values ?? [],
          (text) => u.ctx.measureText(text).width / ratio,
          ((ticks as { size?: number } | undefined)?.size ?? 10) + (gap ?? 5),
        );
      },
      ...(format === formatCount
        ? { incrs: [...COUNT_INCREMENTS] }
        : format === formatShare
        ? { incrs: [...SHARE_INCREMENTS] }
        : {}),
    };
  };
  const scales = new Set(spec.series.map((series) => series.scale ?? "y"));
  const range = (_u: uPlot, min: number, max: number): uPlot.Range.MinMax => {
    if (!spec.fromZero) return min === max ? [min - 1, max + 1] : [min, max];
    return [0, max > 0 ? max * 1.1 : 1];
  };
  return {
    width,
    height: 170,
    legend: { show: spec.series.length > 1, live: false },
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: {
        time: true,
        range: (_u, min, max) => [
          Math.max(max - WINDOW_SECONDS, Math.min(min, max - MIN_SPAN_SECONDS)),
          max,
        ],
      },
      ...Object.fromEntries([...scales].map((scale) => [scale, { range }])),
    },
    axes: [
      {
        stroke: axisColor,
        grid: { stroke: gridColor, width: 1 },
        ticks: { stroke: gridColor, width: 1 },
        // One line of 24-hour clock times: uPlot's default adds a second line with the date.
        space: 70,
        values: (_u, splits) => splits.map(clockTime),
      },
      ...[...scales].map((scale, index) => axis(scale, index === 0 ? 3 : 1)),
    ],
    series: [
      {},
      ...spec.series.map((series): uPlot.Series => ({
        label: series.label,
        scale: series.scale ?? "y",
        stroke: cssVar(series.color),
        width: 1.5,
        points: { show: false },
        value: (_u, value) =>
          value === null ? "–" : (spec.scaleFormats?.[series.scale ?? "y"] ?? spec.format)(value),
      })),
    ],
    plugins: [annotationsPlugin(annotations)],
  };
}

/** The six charts. */
export class Charts {
  #plots: uPlot[] = [];
  #columns: SeriesColumns = [[], ...Array.from({ length: 15 }, (): number[] => [])];
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
    // Canvas colours are set when a chart is made: make them again when the scheme changes.
    globalThis.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      for (const plot of this.#plots) plot.destroy();
      this.#create();
    });
  }

  #create(): void {
    this.#plots = CHARTS.map((spec) => {
      const target = document.getElementById(spec.id)!;
      return new uPlot(
        chartOptions(spec, Math.max(200, target.clientWidth), this.#annotations),
        this.#data(spec),
        target,
      );
    });
  }

  #data(spec: ChartSpec): uPlot.AlignedData {
    return [this.#columns[0], ...spec.series.map((series) => this.#columns[series.column]!)];
  }

  #resize(): void {
    this.#plots.forEach((plot, index) => {
      const target = document.getElementById(CHARTS[index]!.id)!;
      const width = Math.max(200, target.clientWidth);
      if (width !== plot.width) plot.setSize({ width, height: plot.height });
    });
  }

  /**
   * Draws new data.
   *
   * @param columns All series, as {@linkcode StatsSeries.columns} gives them.
   */
  update(columns: SeriesColumns): void {
    this.#columns = columns;
    this.#plots.forEach((plot, index) => plot.setData(this.#data(CHARTS[index]!)));
  }
}
