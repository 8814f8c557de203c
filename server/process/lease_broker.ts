/**
 * The supervisor's side of the number source: every serving process's lease passes this one
 * {@linkcode LeaseGuard}, so the server's high-water mark covers all its processes; it counts
 * each process's leasing, says when the source fails, comes back or goes backwards, and holds
 * leases while an upgrade hands the source on (`release`, then `adopt`).
 *
 * @module
 */

import { monotonicNow } from "../common/clock.ts";
import { LeaseBehindError } from "../lease/lease_behind_error.ts";
import { LeaseGuard } from "../lease/lease_guard.ts";
import type { LeaseSource } from "../lease/lease_source.ts";
import { LeasingTally, type ProcessLeasing } from "./process_leasing.ts";

/** What a process's lease gets: the first number of its run, or why there is none. */
export type LeaseAnswer = { first: number } | { denied: string };

/** Options for {@linkcode LeaseBroker}. */
export interface LeaseBrokerOptions {
  /** Receives log lines with their level (`info` unless said otherwise). */
  log: (line: string, level?: "info" | "warn" | "error") => void;
  /**
   * The highest number the tree this one takes over from ever leased: every lease must start
   * above it, whatever the source says.
   * @default {none}
   */
  above?: number;
}

/** Leases numbers for the serving processes from one source. */
export class LeaseBroker {
  // Every child's leases pass this one guard, so the server's high-water mark covers all its
  // processes: a source gone backwards is refused here whichever process asked.
  readonly #source: LeaseGuard;
  readonly #log: (line: string, level?: "info" | "warn" | "error") => void;
  /** Leasing figures, by process index. */
  readonly #leasing: LeasingTally[] = [];
  /** Leases failed since the last one granted: an outage of the source, logged when it ends. */
  #failedLeases = 0;
  /** When a lease refused as gone backwards was last logged; 0 once leasing works again. */
  #behindLoggedAt = -Infinity;
  /** When the source seen gone backwards by a read (not a lease) was last logged; as above. */
  #backwardsSeenLoggedAt = -Infinity;
  /** Leases in flight to the source; an upgrade waits for none before handing it over. */
  #leasesInFlight = 0;
  #noLeaseInFlight: (() => void) | null = null;
  /**
   * Leases asked while the source is being handed over (this tree's processes' and, in a chain
   * of upgrades, those of the tree before it), asked again once a source is adopted.
   */
  #heldLeases: (() => void)[] | null = null;

  /**
   * @param source Where numbers come from.
   * @param options Logging, and the mark of the tree taken over from.
   */
  constructor(source: LeaseSource, options: LeaseBrokerOptions) {
    this.#source = new LeaseGuard(source, options.above);
    this.#log = options.log;
    // A process that holds numbers leases nothing for a while: the key set back must be said
    // by every server that shares it, not only by the one whose lease it refused.
    this.#source.watch({ onBehind: (error) => this.#logBehind(error) });
  }

  /** Where numbers come from (the guard around the source). */
  get source(): LeaseSource {
    return this.#source;
  }

  /** Whether the source is refused as gone backwards. */
  get refusing(): boolean {
    return this.#source.refusing;
  }

  /**
   * @param index A process's index.
   * @returns Its leasing figures so far.
   */
  leasing(index: number): ProcessLeasing {
    return this.#leasing[index]?.figures() ?? new LeasingTally().figures();
  }

  /**
   * Leases `count` numbers for process `index`; held while the source is handed over.
   *
   * @param index The process asking.
   * @param count How many.
   * @returns The first number of the run, or why it was denied (the process retries).
   */
  lease(index: number, count: number): Promise<LeaseAnswer> {
    const held = this.#heldLeases;
    if (held !== null) {
      return new Promise((resolve) => held.push(() => resolve(this.lease(index, count))));
    }
    const tally = this.#leasing[index] ??= new LeasingTally();
    const started = monotonicNow();
    return this.#counted(count).then(
      (first): LeaseAnswer => {
        tally.granted(count, monotonicNow() - started);
        this.#behindLoggedAt = -Infinity;
        this.#backwardsSeenLoggedAt = -Infinity;
        if (this.#failedLeases > 0) {
          this.#log(
            `leasing numbers again from ${this.#source.description} after ` +
              `${this.#failedLeases} failed lease${this.#failedLeases === 1 ? "" : "s"}`,
          );
          this.#failedLeases = 0;
        }
        return { first };
      },
      (error: Error): LeaseAnswer => {
        tally.failed(monotonicNow() - started);
        this.#failedLeases++;
        if (error instanceof LeaseBehindError) {
          // Never served: the processes run out of what they hold and refuse clients, and
          // /readyz answers 503, until the source is set above the mark.
          this.#logBehind(error);
          return { denied: error.message };
        }
        // The processes serve on from the numbers they hold and retry with backoff; once those
        // run out they close new clients unanswered (closedNumbersUnavailable).
        this.#log(
          `cannot lease ${count} numbers to process ${index}: ${error.message}` +
            (this.#failedLeases === 1 ? "; serving from leased numbers, retrying" : ""),
          "warn",
        );
        return { denied: error.message };
      },
    );
  }

  /**
   * Says the source went backwards, with this server's mark: when it starts and every 10 s while
   * it lasts (each process retries every few seconds, and the source is read every second).
   */
  #logBehind(error: LeaseBehindError): void {
    const now = monotonicNow();
    // Kept apart: a key seen set back by a read must not hide the refusals that follow.
    const last = error.watched ? this.#backwardsSeenLoggedAt : this.#behindLoggedAt;
    if (now - last < 10_000) return;
    if (error.watched) this.#backwardsSeenLoggedAt = now;
    else this.#behindLoggedAt = now;
    const refused = this.#source.status().leasesRefused ?? 0;
    this.#log(
      `${error.message} (${refused} lease${refused === 1 ? "" : "s"} refused so far)`,
      "error",
    );
  }

  /** Leases from the source, counted so that {@linkcode release} waits for it. */
  #counted(count: number): Promise<number> {
    this.#leasesInFlight++;
    return this.#source.lease(count).finally(() => {
      if (--this.#leasesInFlight === 0) this.#noLeaseInFlight?.();
    });
  }

  /**
   * Stops leasing for an upgrade: leases asked from now on wait, those in flight are let finish,
   * then the source is closed (a state file's lock released), so the tree taking over can open it.
   * The processes serve on from the numbers they hold.
   *
   * @returns The highest number this tree was ever granted: every block a process holds, or
   * ever held, ends at or below it.
   */
  async release(): Promise<number> {
    this.#heldLeases ??= [];
    if (this.#leasesInFlight > 0) {
      await new Promise<void>((resolve) => (this.#noLeaseInFlight = resolve));
      this.#noLeaseInFlight = null;
    }
    try {
      await this.#source.close();
    } catch (error) {
      // A state file's lock file that cannot be removed (a read-only directory): its kernel
      // lock is released all the same, which is what the tree taking over needs. Thrown on, the
      // handover would stall with both trees waiting and no one leasing.
      this.#log(
        `upgrade: the number source did not close cleanly: ${(error as Error).message}`,
        "warn",
      );
    }
    return this.#source.mark;
  }

  /**
   * Leases from `source` from now on, and grants the leases that waited since
   * {@linkcode release}: the same source opened again (an upgrade failed) or the tree that
   * took over (it worked). The high-water mark is kept, so no grant can start at or below it.
   *
   * @param source Where numbers come from now.
   */
  adopt(source: LeaseSource): void {
    this.#source.replace(source);
    const held = this.#heldLeases ?? [];
    this.#heldLeases = null;
    for (const ask of held) ask();
  }

  /**
   * Leases `count` numbers for the tree this one took over from, whose processes still serve
   * their open connections: through the same guard as this tree's own leases, and held like
   * them while this tree hands its source on (upgraded again while the tree before still
   * drains): granted from the source let go, such a lease would overlap the next tree's numbers.
   *
   * @param count How many.
   * @returns The first.
   */
  leaseFor(count: number): Promise<number> {
    const held = this.#heldLeases;
    if (held === null) return this.#counted(count);
    return new Promise((resolve) => held.push(() => resolve(this.leaseFor(count))));
  }

  /** Closes the source (at the end of a drain or a kill). */
  close(): Promise<void> {
    return this.#source.close();
  }
}
