/**
 * `kill -USR2` and `POST /v1/upgrade`: replaces this server with the program at the same path
 * (a new binary, or the same one) without refusing a connection. The new supervisor tree takes
 * the number space and the port over (server/process/upgrade_handover.ts); this one then stops
 * its admin API, stops accepting, serves its open connections until they close or the drain
 * timeout passes, and stops as SIGTERM would. If the new tree fails to come up, this one serves on
 * and says why.
 *
 * @module
 */

import process from "node:process";
import type { UpgradeEvent } from "../admin/backend.ts";
import { StateConflictError } from "../admin/errors.ts";
import { ADMIN_LISTENER_FD_ENV } from "../server/adapters/mod.ts";
import { startedCommand } from "../server/adapters/self_command.ts";
import type { LeaseSource } from "../server/lease/lease_source.ts";
import { monotonicNow } from "../server/common/clock.ts";
import {
  type Handover,
  startHandover,
  UpgradeFailedError,
} from "../server/process/upgrade_handover.ts";
import type { Supervisor } from "../server/process/supervisor.ts";

export type { UpgradeEvent };

/** What an upgrade needs from the running server. */
export interface UpgradeHooks {
  supervisor: Supervisor;
  /** The admin API's port, or null without one. */
  adminPort: () => number | null;
  /**
   * The admin API's listening socket, passed to the new tree (the port is bound without
   * SO_REUSEPORT, so the new tree cannot bind it beside this one, and nobody else can either),
   * or null.
   * @default {() => null}
   */
  handOffAdmin?: () => number | null;
  /**
   * Called in the same turn as the new tree is started with that socket (see
   * CappedHttpServer.handedOff).
   * @default {() => {}}
   */
  adminHandedOff?: () => void;
  /**
   * Accepts on the admin port again when the new tree failed before it took the socket over.
   * @default {() => Promise.resolve()}
   */
  takeBackAdmin?: () => Promise<void>;
  /** Opens the number source again after a failed upgrade (above `mark` for memory). */
  reopen(mark: number): Promise<LeaseSource>;
  /**
   * Stops this tree's admin API: resolves once its listener is closed, so that the new tree can
   * bind the port, with `done`, which resolves once the requests it had accepted are answered.
   */
  stopAdmin(): Promise<{ done: Promise<void> }>;
  /** Serves this tree's admin API again, on the same port (the new tree died before taking it). */
  resumeAdmin(): Promise<void>;
  /**
   * Called once the new tree serves alone: what was kept to serve the admin API again (see
   * `resumeAdmin`) is let go.
   * @default {() => {}}
   */
  adminTakenOver?(): void;
  /** Starts this tree's stop, as SIGTERM would. */
  stop(reason: string): void;
  log(line: string, level?: "info" | "warn" | "error"): void;
  /** This tree's version and runtime (`tallyho 1.2.3 on bun 1.4.5`), told to the new tree. */
  version: string;
  /**
   * The pid of the tree this one is still taking over from (it has not let go yet), or null.
   * @default {() => null}
   */
  takingOverFrom?(): number | null;
  /** Called with every change of the upgrade's state. */
  onEvent?(event: UpgradeEvent): void;
}

/**
 * Returns the function that starts an upgrade: it answers at once with the new supervisor's pid;
 * how the upgrade goes is logged and passed to `onEvent`.
 *
 * @param hooks The running server.
 * @returns `upgrade(origin)`, which throws {@linkcode StateConflictError} while one is under way,
 * and when the program cannot be started at all (then nothing was given up).
 */
export function upgrader(hooks: UpgradeHooks): (origin: string) => UpgradeEvent {
  let current: UpgradeEvent | null = null;
  /** The last upgrade that failed, while this tree opens its number source again after it. */
  let failed: Handover | null = null;
  // Resolved now, at start: the path the operator started is checked against the running
  // executable once, before a deploy points a symlink elsewhere.
  const self = startedCommand();
  const note = (event: UpgradeEvent) => {
    current = event;
    hooks.onEvent?.({ ...event });
  };
  return (origin) => {
    if (current !== null && current.state !== "failed") {
      throw new StateConflictError(
        current.state === "upgrading"
          ? `Cannot upgrade: an upgrade to pid ${current.pid} is under way`
          : `Cannot upgrade: this server has handed over to pid ${current.pid} and is draining`,
      );
    }
    const reopening = failed?.recovering ?? null;
    if (reopening !== null) {
      throw new StateConflictError(
        `Cannot upgrade: the last upgrade failed and this server is still opening its number ` +
          `source again (${reopening}); try again once it leases again`,
      );
    }
    // Until the tree before has let go, it may still take its numbers back (this tree dying
    // before then): a tree started from here would be numbering above this one, unknown to it.
    const from = hooks.takingOverFrom?.() ?? null;
    if (from !== null) {
      throw new StateConflictError(
        `Cannot upgrade: this server is still taking over from pid ${from}; try again once ` +
          `that tree has let go`,
      );
    }
    // process.argv after the runtime and the script are what main() was given (mod.ts).
    const args = [...self.args, ...process.argv.slice(2)];
    const started = monotonicNow();
    const event: UpgradeEvent = {
      state: "upgrading",
      origin,
      at: Date.now(),
      pid: 0,
      fromPid: process.pid,
    };
    const adminFd = hooks.handOffAdmin?.() ?? null;
    if (adminFd === null && hooks.adminPort() !== null) {
      hooks.log(
        "upgrade: cannot find the admin API's listening socket to pass on (no /proc?); the new " +
          "tree binds the port again once this one has closed it",
        "warn",
      );
    }
    let handover: Handover;
    try {
      handover = startHandover({
        supervisor: hooks.supervisor,
        command: self.command,
        args,
        env: process.env,
        adminPort: hooks.adminPort(),
        inherit: adminFd === null ? [] : [{ fd: adminFd, env: ADMIN_LISTENER_FD_ENV }],
        reopen: (mark) => hooks.reopen(mark),
        version: hooks.version,
        log: hooks.log,
      });
    } catch (error) {
      if (!(error instanceof UpgradeFailedError)) throw error;
      // Nothing started and nothing given up: said at once, and a later upgrade may try again.
      note({ ...event, state: "failed", reason: error.message });
      hooks.log(`upgrade (${origin}): ${error.message}`, "error");
      throw new StateConflictError(error.message);
    }
    if (adminFd !== null) hooks.adminHandedOff?.();
    event.pid = handover.pid;
    note(event);
    hooks.log(
      `upgrade (${origin}): started a new supervisor (pid ${handover.pid}): ${self.command} ` +
        args.join(" "),
    );
    handover.listening.then(async (listeningMs) => {
      // The new tree accepts, every process of it holding numbers. This tree's admin API goes
      // first: once this one no longer accepts there, the new tree accepts on the socket passed
      // to it (or binds the port, where none could be passed: the port has no SO_REUSEPORT, so
      // nobody can share it); then this tree's listeners close.
      const admin = await hooks.stopAdmin();
      await handover.adminFree();
      // A /readyz probe this tree's admin API accepted is answered before it stops accepting:
      // answered after, it would find this tree paused and say 503 while the new tree serves.
      await admin.done;
      await hooks.supervisor.setPaused(true);
      const told = await handover.released();
      if (!told) {
        // It died after it listened, before it was told this tree let go: nobody would serve.
        failed = handover;
        await hooks.supervisor.setPaused(false);
        await hooks.resumeAdmin().catch((error: Error) =>
          hooks.log(`upgrade: the admin API could not be served again: ${error.message}`, "error")
        );
        const reason = `upgrade failed: the new supervisor (pid ${handover.pid}) exited after ` +
          `it listened, before this tree let go; this tree serves on`;
        note({ ...event, state: "failed", reason });
        hooks.log(reason, "error");
        return;
      }
      // The one place where this tree has handed over: from here the new tree serves alone.
      hooks.adminTakenOver?.();
      const handoverMs = monotonicNow() - started;
      note({ ...event, state: "handed-over", handoverMs });
      const drainMs = hooks.supervisor.config.drainTimeoutMs;
      const running = handover.successorVersion === null ? "" : ` (${handover.successorVersion})`;
      hooks.log(
        `upgrade: handed over to pid ${handover.pid}${running}: handover took ` +
          `${Math.round(handoverMs)} ms (the new tree listened after ${Math.round(listeningMs)} ` +
          `ms); this tree no longer accepts and serves its open connections for up to ` +
          `${drainMs} ms`,
      );
      const deadline = monotonicNow() + drainMs;
      while (hooks.supervisor.connectionsOpen() > 0 && monotonicNow() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      hooks.stop(`upgrade to pid ${handover.pid}`);
    }, async (error: Error) => {
      failed = handover;
      note({ ...event, state: "failed", reason: error.message });
      hooks.log(error.message, "error");
      await hooks.takeBackAdmin?.().catch((failure: Error) =>
        hooks.log(`upgrade: the admin API could not accept again: ${failure.message}`, "error")
      );
    });
    return { ...event };
  };
}
