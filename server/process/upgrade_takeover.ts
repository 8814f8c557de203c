/**
 * The new supervisor's side of an upgrade: started by the old one with the handover socket named
 * in {@linkcode UPGRADE_SOCKET_ENV}, it asks for the number space, learns the port and the old
 * tree's high-water mark, reports each lease it grants until the old tree has let go, and then
 * leases for the old tree's processes, which still serve their open connections. The steps are
 * described in `_upgrade_messages.ts`.
 *
 * @module
 */

import { connect, type Socket } from "node:net";
import process from "node:process";
import type { LeaseOptions, LeaseSource } from "../lease/lease_source.ts";
import { monotonicNow } from "../monotonic_clock.ts";
import { readJsonLines, writeJsonLine } from "./json_lines.ts";
import { UpgradeFailedError } from "./upgrade_handover.ts";
import type { Supervisor } from "./supervisor.ts";
import { type FromSuccessor, type ToSuccessor, UPGRADE_SOCKET_ENV } from "./_upgrade_messages.ts";

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
}

/** The new supervisor's end of the handover channel. */
export class Takeover {
  readonly handed: Handed;
  /** When this supervisor joined the channel, on the monotonic clock. */
  readonly joinedAt: number;
  readonly #socket: Socket;
  #released = false;
  #onReleased: () => void = () => {};
  #supervisor: Supervisor | null = null;

  private constructor(socket: Socket, handed: Handed, joinedAt: number) {
    this.#socket = socket;
    this.handed = handed;
    this.joinedAt = joinedAt;
  }

  /**
   * Joins the old supervisor when this one was started by an upgrade, and asks for the numbers.
   * Takes the variable out of the environment, so the serving processes do not see it.
   *
   * @param env This process's environment.
   * @returns The takeover once the old tree has stopped leasing, or null when not an upgrade.
   */
  static async join(env: Record<string, string | undefined>): Promise<Takeover | null> {
    const path = env[UPGRADE_SOCKET_ENV];
    if (path === undefined || path === "") return null;
    delete env[UPGRADE_SOCKET_ENV];
    const joinedAt = monotonicNow();
    const socket = connect({ path });
    socket.on("error", () => {});
    return await new Promise<Takeover>((resolve, reject) => {
      let takeover: Takeover | null = null;
      socket.once(
        "error",
        (error) =>
          reject(
            new UpgradeFailedError(
              `Cannot take over: the supervisor that started this upgrade is gone ` +
                `(${error.message}); start tallyho again without ${UPGRADE_SOCKET_ENV}`,
            ),
          ),
      );
      readJsonLines<ToSuccessor>(socket, {
        onMessage: (message) => {
          if (message.type === "handover") {
            const { pid, port, adminPort, mark } = message;
            takeover = new Takeover(socket, { pid, port, adminPort, mark }, joinedAt);
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
      socket.once("connect", () => Takeover.#send(socket, { type: "hello", pid: process.pid }));
    });
  }

  static #send(socket: Socket, message: FromSuccessor): Promise<void> {
    if (socket.destroyed) return Promise.resolve();
    return writeJsonLine(socket, message);
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
    const report = async (first: number, count: number) => {
      if (!this.#released) {
        await Takeover.#send(this.#socket, { type: "leased", last: first + count - 1 });
      }
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
   * Says this tree listens, and resolves once the old one no longer accepts (or is gone); from
   * then on the old tree's processes lease through `supervisor`.
   *
   * @param supervisor This tree.
   */
  async listening(supervisor: Supervisor): Promise<void> {
    this.#supervisor = supervisor;
    // Released already means the channel ended while this tree started (the old supervisor was
    // stopped, or died): this tree serves alone, and nobody will say so again.
    const released = this.#released
      ? Promise.resolve()
      : new Promise<void>((resolve) => (this.#onReleased = resolve));
    await Takeover.#send(this.#socket, { type: "listening" });
    await released;
  }

  /**
   * Tells the old tree that this one failed, so it serves on at once.
   *
   * @param message Why.
   */
  async fail(message: string): Promise<void> {
    await Takeover.#send(this.#socket, { type: "failed", message });
    this.#socket.destroy();
  }

  #onMessage(message: ToSuccessor): void {
    switch (message.type) {
      case "released":
        // Written before reporting stops: an old tree that never reads it (this process died
        // first) knows every lease, and takes its numbers back above them.
        Takeover.#send(this.#socket, { type: "taken" });
        this.#released = true;
        this.#onReleased();
        break;
      case "lease": {
        const supervisor = this.#supervisor;
        if (supervisor === null) {
          Takeover.#send(this.#socket, {
            type: "deny",
            id: message.id,
            message: "the new tree does not lease yet",
          });
          break;
        }
        supervisor.leaseFor(message.count).then(
          (first) => Takeover.#send(this.#socket, { type: "grant", id: message.id, first }),
          (error: Error) =>
            Takeover.#send(this.#socket, { type: "deny", id: message.id, message: error.message }),
        );
        break;
      }
    }
  }

  #ended(): void {
    this.#released = true;
    this.#onReleased();
  }
}
