/**
 * The one place every lease of a running server passes: the supervisor leases through it for all
 * its processes, whatever the source (memory, state file, Redis, or one yet to come). It keeps
 * this server's mark, the highest number it knows was leased from the source (any of its
 * processes' grants, and what it read of a shared source), and refuses any grant that starts at
 * or below it, so a source that goes backwards (a Redis key overwritten, lost or restored from an
 * older snapshot, a state file replaced) never makes this server repeat a number it handed out.
 *
 * It also watches a source that can be read without leasing ({@linkcode LeaseSource.peek}: Redis,
 * etcd) about once a second when no lease read it: a server that holds numbers leases nothing for
 * a while, and with two servers on one key the one that said nothing was the one whose mark an
 * operator needed (docs/numbering.md). Each read also raises the mark to what the source held, so
 * a key set back between two servers' marks is refused by a server that had read the higher one.
 * It cannot see numbers leased by a server since stopped that it never read, nor a mark from
 * before this start.
 *
 * @module
 */

import { monotonicNow } from "../common/clock.ts";
import { LeaseBehindError } from "./lease_behind_error.ts";
import type { LeaseOptions, LeaseSource, LeaseSourceStatus } from "./lease_source.ts";

/** Options for {@linkcode LeaseGuard.watch}. */
export interface WatchOptions {
  /**
   * Reads the source when no lease has read it for this long, in milliseconds.
   * @default {1000}
   */
  everyMs?: number;
  /** Called each time a read finds the source below the mark (the caller throttles its log). */
  onBehind: (error: LeaseBehindError) => void;
}

/** Refuses leases that go backwards; see the module's description. */
export class LeaseGuard implements LeaseSource {
  #inner: LeaseSource;
  #mark: number;
  #refused = 0;
  #refusing = false;
  #lastLeaseMs: number | null = null;
  #watch: { everyMs: number; onBehind: (error: LeaseBehindError) => void } | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  /** When a lease or a read last told where the source stands. */
  #readAt = -Infinity;
  #peeking = false;

  /**
   * @param inner The source; the guard starts from its mark (`next - 1`), so a source that moves
   * back before the first lease is caught too.
   * @param above A mark known from elsewhere (the tree this one took over from in an upgrade):
   * the guard starts from the higher of the two.
   */
  constructor(inner: LeaseSource, above = -Infinity) {
    this.#inner = inner;
    this.#mark = Math.max(inner.next - 1, above);
  }

  /**
   * Leases from another source from now on, keeping the mark and the counts: the same source
   * opened again after an upgrade that failed, or the tree that took over in one that worked.
   *
   * @param inner The new source; the mark becomes the higher of the two.
   */
  replace(inner: LeaseSource): void {
    this.#inner = inner;
    this.#mark = Math.max(this.#mark, inner.next - 1);
    if (this.#watch !== null) this.#startTimer();
  }

  /**
   * Reads the source between leases (only a source with {@linkcode LeaseSource.peek}), and
   * reports each read that finds it below the mark. Stops on {@linkcode close}; resumes on
   * {@linkcode replace}.
   *
   * @param options How often, and whom to tell.
   */
  watch(options: WatchOptions): void {
    this.#watch = { everyMs: options.everyMs ?? 1000, onBehind: options.onBehind };
    this.#startTimer();
  }

  #startTimer(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => this.#read(), Math.max(10, this.#watch!.everyMs / 4));
  }

  #read(): void {
    const watch = this.#watch;
    const inner = this.#inner;
    if (watch === null || this.#peeking || inner.peek === undefined) return;
    if (monotonicNow() - this.#readAt < watch.everyMs) return;
    this.#peeking = true;
    // Compared with the mark from before the read: a lease granted meanwhile may end above
    // what the read saw (an etcd range served just before the lease's commit) without the
    // source having gone anywhere.
    const before = this.#mark;
    inner.peek().then(
      ({ mark, what }) => {
        if (inner !== this.#inner || this.#timer === null) return;
        this.#readAt = monotonicNow();
        if (mark < before) {
          watch.onBehind(
            new LeaseBehindError(this.description, what, this.#mark, { watched: true }),
          );
        } else {
          this.#mark = Math.max(this.#mark, mark);
        }
      },
      () => {
        // Unreadable now (the source down): leases say so, and the next read tries again.
      },
    ).finally(() => {
      this.#peeking = false;
    });
  }

  get description(): string {
    return this.#inner.description;
  }

  /**
   * Leases from the source, asking it to refuse a run at or below the mark where it can check
   * that atomically (Redis does, so a refused lease takes nothing), and checking every grant.
   *
   * @param count How many numbers.
   * @returns The first of a run wholly above every number this server leased before.
   * @throws {LeaseBehindError} When the source went backwards; the run is abandoned.
   */
  async lease(count: number, _options?: LeaseOptions): Promise<number> {
    let first: number;
    const started = monotonicNow();
    // The mark the source is asked to check: a read that raises the mark while this lease is in
    // flight may have seen this very run (a GET queued behind the script), so the grant is
    // checked against the mark it was asked for.
    const above = this.#mark;
    try {
      first = await this.#inner.lease(count, { above });
    } catch (error) {
      if (error instanceof LeaseBehindError) this.#refuse();
      throw error;
    } finally {
      this.#lastLeaseMs = monotonicNow() - started;
    }
    if (first <= above) {
      this.#refuse();
      throw new LeaseBehindError(
        this.#inner.description,
        `it granted ${first} to ${first + count - 1}`,
        this.#mark,
      );
    }
    this.#mark = Math.max(this.#mark, first + count - 1);
    this.#readAt = monotonicNow();
    this.#refusing = false;
    return first;
  }

  #refuse(): void {
    this.#refused++;
    this.#refusing = true;
  }

  /**
   * The highest number this server knows was leased from the source: its processes' grants, what
   * it read of the source, and the source's mark at the start.
   */
  get mark(): number {
    return this.#mark;
  }

  /** Whether the last lease was refused as going backwards (until one is granted again). */
  get refusing(): boolean {
    return this.#refusing;
  }

  get next(): number {
    return this.#inner.next;
  }

  /** Closes the source and stops watching it (until {@linkcode replace}). */
  close(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    return this.#inner.close();
  }

  status(): LeaseSourceStatus {
    return {
      kind: sourceKind(this.#inner.description),
      ...this.#inner.status(),
      mark: this.#mark,
      leasesRefused: this.#refused,
      lastLeaseMs: this.#lastLeaseMs,
    };
  }
}

/**
 * The kind of source, from its description's first words (`memory ...`, `state file ...`,
 * `redis ...`): read here rather than asked of each source, so a source added later (etcd) is
 * named by its first word without touching this file.
 *
 * @param description A source's {@linkcode LeaseSource.description}.
 * @returns `memory`, `state-file`, `redis`, or the description's first word.
 */
export function sourceKind(description: string): string {
  if (description.startsWith("state file")) return "state-file";
  return /^[a-z0-9-]+/i.exec(description)?.[0]?.toLowerCase() ?? "unknown";
}
