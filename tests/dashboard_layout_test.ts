/**
 * The dashboard charts' layout decisions: annotation labels that never overprint, and whole-number
 * ticks on a count axis.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { COUNT_INCREMENTS, placeLabels } from "../admin/ui/chart_layout.ts";

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
