/**
 * Checks the numbers in the replies one thread receives.
 *
 * A server may number by connection (every reply on a connection carries that connection's N)
 * or by message (every reply a new, larger N), so each connection's numbers must either stay the
 * same or rise. Each time a connection's number changes (and its first number), the number is
 * recorded in the thread's {@linkcode SeenNumbers}; finding it there already means another
 * connection (or this one, earlier) got it too: a repeat, which is a bug in the server under
 * test. Threads' sets are merged at the end to find repeats between threads.
 *
 * @module
 */

import { MALFORMED_LINE, OTHER_LINE } from "./reply_parser.ts";
import { SeenNumbers } from "./seen_numbers.ts";

/** How many repeated numbers are kept as examples for the report. */
export const REPEAT_EXAMPLES = 10;

const KEPT = 1;
const ADVANCED = 2;
const MIXED = 4;

/** Where a connection's numbering stands. */
export interface NumberingState {
  /** The last N this connection received; 0 before the first. */
  lastNumber: number;
  /** Private flags. */
  numberingFlags: number;
}

/** What one thread's checker found, in a form that crosses threads. */
export interface CheckFigures {
  /** Replies that carried a well-formed N. */
  numbered: number;
  /** Replies that did not start with the greeting (not checked). */
  other: number;
  /** Replies that started with the greeting but carried no valid N. */
  malformed: number;
  /** Numbers received that had been received before (by another connection, or non-adjacently). */
  repeats: number;
  /** Replies whose N was smaller than the one before on the same connection. */
  decreasing: number;
  /** Connections whose replies both repeated an N and moved on (neither numbering scheme). */
  mixed: number;
  /** Numbers not tracked because the repeat check hit its memory limit. */
  untracked: number;
  /** Some repeated numbers, for the report. */
  repeatExamples: number[];
}

/** Figures of a check that has seen nothing yet. */
export function noFigures(): CheckFigures {
  return {
    numbered: 0,
    other: 0,
    malformed: 0,
    repeats: 0,
    decreasing: 0,
    mixed: 0,
    untracked: 0,
    repeatExamples: [],
  };
}

/** One thread's reply check. */
export class ReplyChecker {
  readonly seen: SeenNumbers;
  readonly figures: CheckFigures = noFigures();

  /** @param seen The set to record numbers in. */
  constructor(seen: SeenNumbers = new SeenNumbers()) {
    this.seen = seen;
  }

  /**
   * Checks one reply line.
   *
   * @param state The numbering state of the connection it arrived on.
   * @param line The parser's value for the line: N, `OTHER_LINE` or `MALFORMED_LINE`.
   */
  observe(state: NumberingState, line: number): void {
    const figures = this.figures;
    if (line === OTHER_LINE) {
      figures.other++;
      return;
    }
    if (line === MALFORMED_LINE) {
      figures.malformed++;
      return;
    }
    figures.numbered++;
    const last = state.lastNumber;
    state.lastNumber = line;
    if (last === 0) {
      this.#record(line);
      return;
    }
    let flags = state.numberingFlags;
    if (line === last) flags |= KEPT;
    else {
      flags |= ADVANCED;
      if (line < last) figures.decreasing++;
      this.#record(line);
    }
    if ((flags & (KEPT | ADVANCED | MIXED)) === (KEPT | ADVANCED)) {
      flags |= MIXED;
      figures.mixed++;
    }
    state.numberingFlags = flags;
  }

  #record(n: number): void {
    if (this.seen.add(n)) this.noteRepeat(n);
  }

  /**
   * Counts a repeated number (also used when merging threads).
   *
   * @param n The number.
   */
  noteRepeat(n: number): void {
    const figures = this.figures;
    figures.repeats++;
    if (figures.repeatExamples.length < REPEAT_EXAMPLES) figures.repeatExamples.push(n);
  }

  /** The figures with the untracked count filled in. */
  result(): CheckFigures {
    this.figures.untracked = this.seen.untracked;
    return this.figures;
  }
}

/**
 * Whether figures show a server bug: a repeat, a decrease, mixed numbering or a malformed reply.
 *
 * @param figures Merged figures.
 * @returns `true` when the check failed.
 */
export function checkFailed(figures: CheckFigures): boolean {
  return figures.repeats > 0 || figures.decreasing > 0 || figures.mixed > 0 ||
    figures.malformed > 0;
}
