// Worker for number_ledger_test: takes positions from a shared ledger, the way a server thread
// does, and sends back what it was given.
import { NumberLedger, NumbersUnavailableError } from "../server/numbering/number_ledger.ts";

/** What number_ledger_test asks a worker to do. */
export type LedgerWork =
  /** Reserve runs of 1..maxRun positions, `positions` in all, and number each one. */
  | { mode: "take"; buffer: SharedArrayBuffer; positions: number; maxRun: number; waitMs: number }
  /** Reserve one position and number it, waiting up to `waitMs` for its block. */
  | { mode: "wait"; buffer: SharedArrayBuffer; waitMs: number }
  /**
   * Look up the oldest block still in the ring, over and over, while the main thread overwrites
   * it: every answer must be that block's own number (block * BLOCK_SIZE + 1 in this test) or a
   * refusal, never the number of the block that replaces it.
   */
  | { mode: "stale"; buffer: SharedArrayBuffer; lookups: number; blockSize: number; ring: number };

/** What a worker sends back. */
export interface LedgerResult {
  numbers: Float64Array;
  refused: number;
  wrong: string[];
}

const scope = globalThis as unknown as {
  onmessage: (event: MessageEvent<LedgerWork>) => void;
  postMessage(message: LedgerResult): void;
};

scope.onmessage = (event) => {
  const work = event.data;
  if (work.mode === "take") {
    const ledger = new NumberLedger(work.buffer);
    const numbers = new Float64Array(work.positions);
    let got = 0;
    let refused = 0;
    let run = 1;
    for (let left = work.positions; left > 0;) {
      const count = Math.min(left, run);
      run = run === work.maxRun ? 1 : run + 1;
      const first = ledger.reserve(count);
      for (let i = 0; i < count; i++) {
        try {
          numbers[got++] = ledger.numberAt(first + i, work.waitMs);
        } catch (error) {
          if (!(error instanceof NumbersUnavailableError)) throw error;
          got--;
          refused++;
        }
      }
      left -= count;
    }
    scope.postMessage({ numbers: numbers.subarray(0, got), refused, wrong: [] });
  } else if (work.mode === "wait") {
    const ledger = new NumberLedger(work.buffer);
    const position = ledger.reserve(1);
    try {
      const n = ledger.numberAt(position, work.waitMs);
      scope.postMessage({ numbers: Float64Array.of(n), refused: 0, wrong: [] });
    } catch (error) {
      if (!(error instanceof NumbersUnavailableError)) throw error;
      scope.postMessage({ numbers: new Float64Array(0), refused: 1, wrong: [] });
    }
  } else {
    const wrong: string[] = [];
    let refused = 0;
    for (let i = 0; i < work.lookups && wrong.length < 5; i++) {
      // A fresh view each time: a view caches the last block it looked up.
      const ledger = new NumberLedger(work.buffer);
      const block = ledger.grantedBlocks - work.ring;
      if (block < 0) continue;
      try {
        const n = ledger.numberAt(block * work.blockSize);
        if (n !== block * work.blockSize + 1) wrong.push(`block ${block} gave ${n}`);
      } catch (error) {
        if (!(error instanceof NumbersUnavailableError)) throw error;
        refused++;
      }
    }
    scope.postMessage({ numbers: new Float64Array(0), refused, wrong });
  }
};
