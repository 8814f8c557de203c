/**
 * Pure layout decisions for the dashboard's charts, kept apart from the canvas so they are tested
 * without a browser.
 *
 * @module
 */

/**
 * Tick steps for an axis of whole counts (active connections): 1, 2, 5, 10, 20, 50 ... Without
 * them uPlot picks steps of 0.2 or 0.5 on a small scale, which a whole-number format writes as
 * "0, 1, 1".
 */
export const COUNT_INCREMENTS: readonly number[] = Array.from(
  { length: 16 },
  (_, power) => [1, 2, 5].map((step) => step * 10 ** power),
).flat();

/** One label to place: where its line is and how wide its text is, in canvas pixels. */
export interface LabelBox {
  x: number;
  width: number;
}

/** Where a label goes: its text's left edge and its row (0 at the top), or null to leave it out. */
export type LabelPlace = { textX: number; row: number } | null;

/**
 * Places the annotations' labels beside their lines without overprinting: each goes on the side
 * of its line with more room, cut to fit by the caller, in the first row where it clears the
 * labels already there; one that fits in no row is left out (its line is still drawn).
 *
 * @param labels The labels, in the order they are drawn (oldest first).
 * @param left The plot's left edge.
 * @param right The plot's right edge.
 * @param options The gap between a line and its text and between labels, and the rows there are.
 * @returns Where each label goes, in the same order.
 */
export function placeLabels(
  labels: readonly LabelBox[],
  left: number,
  right: number,
  options: { gap?: number; rows?: number } = {},
): LabelPlace[] {
  const gap = options.gap ?? 4;
  const rows = options.rows ?? 3;
  // Each row's occupied spans.
  const taken: Array<Array<[number, number]>> = Array.from({ length: rows }, () => []);
  return labels.map(({ x, width }) => {
    const roomRight = right - x - gap;
    const roomLeft = x - gap - left;
    const textX = roomRight >= roomLeft ? x + gap : x - gap - width;
    const start = textX - gap;
    const end = textX + width + gap;
    for (let row = 0; row < rows; row++) {
      if (taken[row]!.every(([a, b]) => end <= a || start >= b)) {
        taken[row]!.push([start, end]);
        return { textX, row };
      }
    }
    return null;
  });
}

/**
 * Tick steps for an axis of shares of one core (0.25 is 25 %): 0.1 %, 0.2 %, 0.5 %, 1 %, 2 % ...
 * With uPlot's own steps a small scale ticks at 0.5 % and a whole-percent format writes it as
 * "1 %, 1 %, 0 %".
 */
export const SHARE_INCREMENTS: readonly number[] = COUNT_INCREMENTS.map((step) => step / 1000);

/**
 * A share of one core as a percentage, with one decimal below 10 % so that ticks 0.1 % apart read
 * apart.
 *
 * @param share The share (1 is one whole core).
 * @returns Such as `"0.5 %"`, `"12 %"`.
 */
export function formatShare(share: number): string {
  const percent = share * 100;
  return `${Number(percent.toFixed(Math.abs(percent) < 10 ? 1 : 0))} %`;
}

/**
 * How wide a value axis must be for its widest label, so that none is cut at the canvas' edge
 * ("L50 ms" for "150 ms"): the text's width plus the ticks and the gap, never under `minimum`.
 *
 * @param labels The labels drawn on the axis.
 * @param measure The width of a text in CSS pixels (the canvas' `measureText` in the font used).
 * @param ticksAndGap The tick length and the gap between tick and text, in CSS pixels.
 * @param minimum The width kept when the labels are narrow.
 * @returns The axis width in CSS pixels.
 */
export function axisWidth(
  labels: readonly string[],
  measure: (text: string) => number,
  ticksAndGap: number,
  minimum = 40,
): number {
  const widest = labels.reduce((most, label) => Math.max(most, measure(label)), 0);
  return Math.max(minimum, Math.ceil(widest + ticksAndGap + 4));
}
