/**
 * The dashboard charts' layout decisions: annotation labels that never overprint, and whole-number
 * ticks on a count axis.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  axisWidth,
  COUNT_INCREMENTS,
  formatShare,
  placeLabels,
  SHARE_INCREMENTS,
} from "../admin/ui/chart_layout.ts";

test("dashboard annotations close together go on separate rows, never over each other", () => {
  // Three changes 10 px apart on a 600 px plot, labels 120 px wide: the old layout drew all three
  // on one row, overprinted.
  const places = placeLabels(
    [{ x: 100, width: 120 }, { x: 110, width: 120 }, { x: 120, width: 120 }],
    0,
    600,
  );
  assert.deepEqual(places.map((p) => p?.row), [0, 1, 2]);
  // A fourth has no row left: left out rather than drawn over another.
  const crowded = placeLabels(
    [100, 105, 110, 115].map((x) => ({ x, width: 120 })),
    0,
    600,
  );
  assert.equal(crowded[3], null);
  // Far apart: all on the top row; near the right edge, a label goes left of its line.
  const apart = placeLabels(
    [{ x: 50, width: 100 }, { x: 300, width: 100 }, { x: 590, width: 100 }],
    0,
    600,
  );
  assert.deepEqual(apart.map((p) => p?.row), [0, 0, 0]);
  assert.ok(apart[2]!.textX + 100 <= 590, "the rightmost label is drawn left of its line");
  // No two placed labels on one row overlap, whatever the order.
  const many = placeLabels(
    Array.from({ length: 40 }, (_, i) => ({ x: (i * 37) % 600, width: 30 + (i % 5) * 20 })),
    0,
    600,
  );
  const boxes = many.map((p, i) => p && { row: p.row, a: p.textX, b: p.textX + 30 + (i % 5) * 20 });
  for (const one of boxes) {
    for (const other of boxes) {
      if (!one || !other || one === other || one.row !== other.row) continue;
      assert.ok(one.b <= other.a || one.a >= other.b, `overlap on row ${one.row}`);
    }
  }
});

test("dashboard count axes step by whole numbers (no '1, 1, 0')", () => {
  assert.ok(COUNT_INCREMENTS.every((step) => Number.isInteger(step) && step >= 1));
  assert.deepEqual(COUNT_INCREMENTS.slice(0, 6), [1, 2, 5, 10, 20, 50]);
  assert.ok(COUNT_INCREMENTS.at(-1)! >= 1e15);
});

test("dashboard value axes are as wide as their widest label, so '150 ms' is never cut to 'L50 ms'", () => {
  const measure = (text: string) => text.length * 7; // 7 px a character
  const width = axisWidth(["0 ms", "50 ms", "100 ms", "150 ms"], measure, 15);
  assert.ok(width >= "150 ms".length * 7 + 15, `${width} px holds "150 ms" and the ticks`);
  assert.equal(axisWidth(["0", "1"], measure, 15), 40, "narrow labels keep the minimum");
  assert.ok(axisWidth(["1,200 MiB"], measure, 15) > axisWidth(["120 MiB"], measure, 15));
});

test("dashboard CPU axis: ticks at the share steps read apart ('1 %, 1 %, 0 %' was the old axis)", () => {
  for (const step of SHARE_INCREMENTS.slice(0, 12)) {
    const labels = Array.from({ length: 11 }, (_, k) => formatShare(k * step));
    assert.equal(new Set(labels).size, labels.length, `step ${step}: ${labels.join(", ")}`);
  }
  assert.equal(formatShare(0.005), "0.5 %");
  assert.equal(formatShare(0.25), "25 %");
  assert.equal(formatShare(1), "100 %");
});
