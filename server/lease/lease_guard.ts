/**
 * The one place every lease of a running server passes: the supervisor leases through it for all
 * its processes, whatever the source (memory, state file, Redis, or one yet to come). It keeps
 * this server's high-water mark, the highest number any of its processes was granted, and
 * refuses any grant that starts at or below it, so a source that goes backwards (a Redis key
 * overwritten or lost, a state file replaced) never makes this server repeat a number it already
 * handed out. It cannot see numbers other servers leased, nor a mark from before this start.
 *
 * @module
 */

import { monotonicNow } from "../monotonic_clock.ts";
import { LeaseBehindError } from "./lease_behind_error.ts";
import type { LeaseOptions, LeaseSource, LeaseSourceStatus } from "./lease_source.ts";

/** Refuses leases that go backwards; see the module's description. */
export class LeaseGuard implements LeaseSource {
  #inner: LeaseSource;
  #mark: number;
  #refused = 0;
  #refusing = false;
  #lastLeaseMs: number | null = null;

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
    try {
      first = await this.#inner.lease(count, { above: this.#mark });
    } catch (error) {
      if (error instanceof LeaseBehindError) this.#refuse();
      throw error;
    } finally {
      this.#lastLeaseMs = monotonicNow() - started;
    }
    if (first <= this.#mark) {
      this.#refuse();
      throw new LeaseBehindError(
        this.#inner.description,
        `it granted ${first} to ${first + count - 1}`,
        this.#mark,
      );
    }
    this.#mark = first + count - 1;
    this.#refusing = false;
    return first;
  }

  #refuse(): void {
    this.#refused++;
    this.#refusing = true;
  }

  /** The highest number this server has been granted (or the source's mark at the start). */
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

  close(): Promise<void> {
    return this.#inner.close();
  }

  status(): LeaseSourceStatus {
    return {
      kind: sourceKind(this.#inner.description),
      ...this.#inner.status(),
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
