/**
 * The new supervisor's side of an upgrade: started by the old one with the handover channel as
 * an inherited descriptor named in {@linkcode UPGRADE_CHANNEL_ENV}, it asks for the number space,
 * learns the port and the old tree's high-water mark, reports each lease it grants until the old
 * tree has let go, and then leases for the old tree's processes, which still serve their open
 * connections. The steps are described in `_upgrade_messages.ts`.
 *
 * @module
 */

import { closeSync, createReadStream, fstatSync, writeSync } from "node:fs";
import process from "node:process";
import type { LeaseOptions, LeaseSource } from "../lease/lease_source.ts";
import { monotonicNow } from "../common/clock.ts";
import { readJsonLines } from "../common/json_lines.ts";
import { UpgradeFailedError } from "./upgrade_handover.ts";
import type { Supervisor } from "./supervisor.ts";
import { type FromSuccessor, type ToSuccessor, UPGRADE_CHANNEL_ENV } from "./_upgrade_messages.ts";

/** What the old tree handed over. */
export interface Handed {
  /** The old supervisor's pid. */
  pid: number;
  /** The port the old tree listens on. */
  port: number;
  /** Its admin API's port, or null. */
  adminPort: number | null;
  /** The highest number the old tree was ever granted; this tree leases only above it. */
  mark: number;
  /** The old tree's tallyho version and runtime, or null when it did not say. */
  version: string | null;
}

/**
 * The channel's descriptor, written to with `writeSync` and read through a stream: Bun 1.4's
 * `new net.Socket({ fd })` closes at once, while `node:fs` on the descriptor works on Bun and Deno
 * alike. Lines are small and the old tree reads them as they come, so a write never waits in
 * practice. The descriptor is closed only once the reading has ended, and nothing is written after
 * that (its number may be reused by then); a failed write stops the writing only, and the reading
 * then ends as the old tree's end closes.
 */
class Channel {
  readonly #fd: number;
  #closed = false;
  #writable = true;

  constructor(fd: number) {
    this.#fd = fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  read(handlers: { onMessage(message: ToSuccessor): void; onEnd(): void }): void {
    const stream = createReadStream("", { fd: this.#fd, autoClose: false });
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.#close();
      handlers.onEnd();
    };
    // A read that fails ends the channel too: an old tree that dies with this tree's hello
    // unread resets its end, and Deno 2.9.6 then emits no 'end' or 'close' for a stream that
    // does not close its descriptor, so the takeover waited on nothing and the process ended
    // with "Top-level await promise never resolved" instead of saying it cannot take over.
    stream.on("error", end);
    readJsonLines<ToSuccessor>(stream, {
      onMessage: (message) => handlers.onMessage(message),
      onEnd: end,
    });
  }

  send(message: FromSuccessor): void {
    if (this.#closed || !this.#writable) return;
    const bytes = new TextEncoder().encode(JSON.stringify(message) + "\n");
    try {
      for (let done = 0; done < bytes.length;) done += writeSync(this.#fd, bytes, done);
    } catch {
      this.#writable = false; // the old tree is gone: its end reads as ended soon too
    }
  }

  /** Writes nothing more (the old tree sees the channel end when this process exits). */
  stopWriting(): void {
    this.#writable = false;
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      closeSync(this.#fd);
    } catch {
      // Closed already.
    }
  }
}

/** The new supervisor's end of the handover channel. */
export class Takeover {
  readonly handed: Handed;
  /** When this supervisor joined the channel, on the monotonic clock. */
  readonly joinedAt: number;
  readonly #channel: Channel;
  #released = false;
  #onReleased: () => void = () => {};
  #adminFree = false;
  #onAdminFree: () => void = () => {};
  /** Leases for the old tree's processes, once this tree's source is open. */
  #leaseFor: ((count: number) => Promise<number>) | null = null;

  private constructor(channel: Channel, handed: Handed, joinedAt: number) {
    this.#channel = channel;
    this.handed = handed;
    this.joinedAt = joinedAt;
  }

  /**
   * Joins the old supervisor when this one was started by an upgrade, and asks for the numbers.
   * Takes the variable out of the environment, so the serving processes do not see it.
   *
   * @param env This process's environment.
   * @param version This tree's tallyho version and runtime, for the old tree's log.
   * @param check Runs before the old tree is asked for anything (it gives up its source at
   * `hello`): what throws here (a bad configuration) is told to the old tree, which then serves
   * on having given up nothing, and thrown on.
   * @returns The takeover once the old tree has stopped leasing, or null when not an upgrade.
   * @throws {UpgradeFailedError} When the variable names no inherited channel, or the old tree
   * went away before handing over.
   */
  static async join(
    env: Record<string, string | undefined>,
    version = "",
    check: () => void = () => {},
  ): Promise<Takeover | null> {
    const named = env[UPGRADE_CHANNEL_ENV];
    if (named === undefined || named === "") return null;
    delete env[UPGRADE_CHANNEL_ENV];
    const fd = Number(named);
    if (!Number.isInteger(fd) || fd < 3 || !isSocket(fd)) {
      throw new UpgradeFailedError(
        `Cannot take over: ${UPGRADE_CHANNEL_ENV}=${named} names no handover channel this ` +
          `process inherited (only an upgrade started by a running tallyho sets it); start ` +
          `tallyho again without ${UPGRADE_CHANNEL_ENV}`,
      );
    }
    const joinedAt = monotonicNow();
    const channel = new Channel(fd);
    try {
      check();
    } catch (error) {
      channel.send({ type: "failed", message: (error as Error).message });
      channel.stopWriting();
      throw error;
    }
    return await new Promise<Takeover>((resolve, reject) => {
      let takeover: Takeover | null = null;
      channel.read({
        onMessage: (message) => {
          if (message.type === "handover") {
            const { pid, port, adminPort, mark } = message;
            const handed = { pid, port, adminPort, mark, version: message.version ?? null };
            takeover = new Takeover(channel, handed, joinedAt);
            resolve(takeover);
          } else if (takeover !== null) takeover.#onMessage(message);
        },
        onEnd: () => {
          if (takeover === null) {
            reject(
              new UpgradeFailedError(
                "Cannot take over: the supervisor that started this upgrade closed the handover " +
                  "channel before handing over (it was stopped, or the upgrade timed out)",
              ),
            );
          } else takeover.#ended();
        },
      });
      channel.send({ type: "hello", pid: process.pid, ...(version === "" ? {} : { version }) });
    });
  }

  /**
   * Wraps this tree's source so that every lease is reported to the old tree before anyone can
   * serve from it, until the old tree has let go: if this tree fails half way, the old one opens
   * its source again above all of it.
   *
   * @param source The source.
   * @returns The same source, reporting.
   */
  reporting(source: LeaseSource): LeaseSource {
    const report = (first: number, count: number) => {
      if (!this.#released) this.#channel.send({ type: "leased", last: first + count - 1 });
      return first;
    };
    return {
      get description() {
        return source.description;
      },
      get next() {
        return source.next;
      },
      lease: (count: number, options?: LeaseOptions) =>
        source.lease(count, options).then((first) => report(first, count)),
      // Reads lease nothing: passed through, so the tree that took over watches the key too.
      ...(source.peek === undefined ? {} : { peek: () => source.peek!() }),
      close: () => source.close(),
      status: () => source.status(),
    };
  }

  /**
   * Says this tree's number source is open: the old tree's processes lease through `lease` from
   * now on (the old tree stopped leasing at `hello`), rather than wait until this tree listens.
   * The old tree sees every grant, and takes its numbers back above them if this tree fails.
   *
   * @param lease Leases from this tree's source.
   */
  numbering(lease: (count: number) => Promise<number>): void {
    this.#leaseFor = lease;
    this.#channel.send({ type: "source-open" });
  }

  /**
   * Says this tree listens (every process holds numbers); from then on the old tree's processes
   * lease through `supervisor`, whose guard keeps this tree's mark above them. Resolves once the
   * old tree no longer accepts (or is gone).
   *
   * @param supervisor This tree.
   */
  async listening(supervisor: Supervisor): Promise<void> {
    this.#leaseFor = (count) => supervisor.leaseFor(count);
    // Released already means the channel ended while this tree started (the old supervisor was
    // stopped, or died): this tree serves alone, and nobody will say so again.
    const released = this.#released
      ? Promise.resolve()
      : new Promise<void>((resolve) => (this.#onReleased = resolve));
    this.#channel.send({ type: "listening" });
    await released;
  }

  /**
   * Resolves once the old tree's admin API no longer listens (or the old tree is gone), so that
   * this tree can bind the admin port without SO_REUSEPORT.
   */
  adminFree(): Promise<void> {
    if (this.#adminFree) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const before = this.#onAdminFree;
      this.#onAdminFree = () => {
        before();
        resolve();
      };
    });
  }

  /**
   * Tells the old tree that this one failed, so it serves on at once.
   *
   * @param message Why.
   */
  fail(message: string): Promise<void> {
    this.#channel.send({ type: "failed", message });
    this.#channel.stopWriting();
    return Promise.resolve();
  }

  #onMessage(message: ToSuccessor): void {
    switch (message.type) {
      case "admin-free":
        this.#freeAdmin();
        break;
      case "released":
        // Written before reporting stops: an old tree that never reads it (this process died
        // first) knows every lease, and takes its numbers back above them.
        this.#channel.send({ type: "taken" });
        this.#released = true;
        this.#freeAdmin();
        this.#onReleased();
        break;
      case "lease": {
        const lease = this.#leaseFor;
        if (lease === null) {
          this.#channel.send({
            type: "deny",
            id: message.id,
            message: "the new tree does not lease yet",
          });
          break;
        }
        lease(message.count).then(
          (first) => this.#channel.send({ type: "grant", id: message.id, first }),
          (error: Error) =>
            this.#channel.send({ type: "deny", id: message.id, message: error.message }),
        );
        break;
      }
    }
  }

  #freeAdmin(): void {
    if (this.#adminFree) return;
    this.#adminFree = true;
    this.#onAdminFree();
  }

  #ended(): void {
    this.#released = true;
    this.#freeAdmin();
    this.#onReleased();
  }
}

function isSocket(fd: number): boolean {
  try {
    return fstatSync(fd).isSocket();
  } catch {
    return false;
  }
}
