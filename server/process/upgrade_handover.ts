/**
 * The old supervisor's side of an upgrade (`kill -USR2`, `POST /v1/upgrade`): starts the program
 * again as a new supervisor tree, hands it the number space over a private Unix socket, and either
 * hands it the port too or, when the new tree fails to come up, takes the numbers back and serves
 * on. The steps are described in `_upgrade_messages.ts`.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import type { LeaseSource, LeaseSourceStatus } from "../lease/lease_source.ts";
import { monotonicNow } from "../monotonic_clock.ts";
import { readJsonLines, writeJsonLine } from "./json_lines.ts";
import type { Supervisor } from "./supervisor.ts";
import { type FromSuccessor, type ToSuccessor, UPGRADE_SOCKET_ENV } from "./_upgrade_messages.ts";

export { UPGRADE_SOCKET_ENV } from "./_upgrade_messages.ts";

/** An upgrade that did not happen: the old tree serves on. */
export class UpgradeFailedError extends Error {
  override name = "UpgradeFailedError";
}

/** Options for {@linkcode startHandover}. */
export interface HandoverOptions {
  /** The tree handing over. */
  supervisor: Supervisor;
  /** The program that starts the new supervisor, and its arguments. */
  command: string;
  args: string[];
  /** The new supervisor's environment (the handover socket's variable is added). */
  env: Record<string, string | undefined>;
  /** The admin API's port, or null without one. */
  adminPort: number | null;
  /**
   * Descriptors the new supervisor inherits (the admin API's listening socket), each told to it
   * by its number there in the environment variable `env`.
   * @default {[]}
   */
  inherit?: { fd: number; env: string }[];
  /** Opens the number source again after a failed upgrade, above `mark` for numbers in memory. */
  reopen(mark: number): Promise<LeaseSource>;
  /**
   * How long the new supervisor may take to say hello, and then to listen.
   * @default {60000}
   */
  timeoutMs?: number;
}

/** A handover under way. */
export interface Handover {
  /** The new supervisor's pid. */
  readonly pid: number;
  /**
   * Resolves once the new tree listens (both trees accept now) with the milliseconds since the
   * start; rejects with {@linkcode UpgradeFailedError} once the old tree leases again.
   */
  readonly listening: Promise<number>;
  /**
   * Tells the new tree that this one no longer accepts nor serves the admin API. Resolves true
   * once told, or false when the new tree is already gone (it died after it listened): then this
   * tree leases again from its own source, opened above everything the new tree reported, and
   * must accept again itself.
   */
  released(): Promise<boolean>;
}

/**
 * Starts the new supervisor and hands it the number space; see the module's description.
 *
 * @param options What to start and how this tree serves.
 * @returns The handover, whose `listening` says how it went.
 */
export function startHandover(options: HandoverOptions): Handover {
  const started = monotonicNow();
  const timeoutMs = options.timeoutMs ?? 60_000;
  // mkdtemp makes the directory 0700: only this user can reach the socket.
  const directory = mkdtempSync(join(tmpdir(), "tallyho-upgrade-"));
  const path = join(directory, "handover.sock");
  let peer: Socket | null = null;
  let released = false;
  let cleanedUp = false;
  /** The release of this tree's source, once the new supervisor said hello. */
  let releasing: Promise<number> | null = null;
  let reported = -Infinity;
  const pendingLeases = new Map<number, { resolve(first: number): void; reject(e: Error): void }>();
  let nextLeaseId = 1;
  let resolveListening: (ms: number) => void = () => {};
  let rejectListening: (error: Error) => void = () => {};
  const listening = new Promise<number>((resolve, reject) => {
    resolveListening = resolve;
    rejectListening = reject;
  });
  let settled = false;
  /** Whether the channel has ended: every report the new tree wrote has been read. */
  let ended = false;
  let onEnded: () => void = () => {};
  let onTaken: () => void = () => {};
  const taken = new Promise<void>((resolve) => (onTaken = resolve));
  const channelEnded = new Promise<void>((resolve) => (onEnded = resolve));
  const server: Server = createServer((socket) => {
    if (peer !== null) return void socket.destroy(); // one successor only
    peer = socket;
    // The channel is this connection: nobody else needs to find the socket any more.
    cleanUp();
    socket.on("error", () => {});
    readJsonLines<FromSuccessor>(socket, {
      onMessage: (message) => onMessage(message),
      onEnd: () => {
        ended = true;
        onEnded();
        for (const lease of pendingLeases.values()) {
          lease.reject(new Error(`the tree that took over (pid ${child.pid}) is gone`));
        }
        pendingLeases.clear();
        fail("it closed the handover channel");
      },
    });
  });
  server.listen(path);
  // This tree may stop (SIGTERM) before the new supervisor joins: the socket goes with it.
  process.once("exit", cleanUp);
  const inherit = options.inherit ?? [];
  const child: ChildProcess = spawn(options.command, options.args, {
    stdio: ["ignore", "inherit", "inherit", ...inherit.map(({ fd }) => fd)],
    env: {
      ...options.env,
      [UPGRADE_SOCKET_ENV]: path,
      ...Object.fromEntries(inherit.map(({ env }, i) => [env, String(3 + i)])),
    },
  });
  child.on("error", (error) => fail(`it could not be started: ${error.message}`));
  child.once("exit", (code, signal) => fail(`it exited (${signal ?? `code ${code}`})`));
  const timer = setTimeout(
    () => fail(`it did not take over within ${timeoutMs} ms`),
    timeoutMs,
  );

  const send = (message: ToSuccessor) =>
    peer === null ? Promise.resolve() : writeJsonLine(peer, message);

  async function onMessage(message: FromSuccessor): Promise<void> {
    switch (message.type) {
      case "hello": {
        if (releasing !== null) return;
        releasing = options.supervisor.releaseSource();
        const mark = await releasing;
        if (settled) return; // failed while the leases in flight finished: fail() reopens
        await send({
          type: "handover",
          pid: process.pid,
          port: options.supervisor.port,
          adminPort: options.adminPort,
          mark,
        });
        break;
      }
      case "leased":
        reported = Math.max(reported, message.last);
        break;
      case "taken":
        onTaken();
        break;
      case "failed":
        fail(`it failed: ${message.message}`);
        break;
      case "listening":
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        options.supervisor.adoptSource(successorSource());
        child.unref();
        resolveListening(monotonicNow() - started);
        break;
      case "grant":
        pendingLeases.get(message.id)?.resolve(message.first);
        pendingLeases.delete(message.id);
        break;
      case "deny":
        pendingLeases.get(message.id)?.reject(new Error(message.message));
        pendingLeases.delete(message.id);
        break;
    }
  }

  /** Leases through the tree that took over: this tree's processes still serve open connections. */
  function successorSource(): LeaseSource {
    let last: { first: number; last: number } | null = null;
    return {
      description: `the tree that took over (pid ${child.pid})`,
      get next() {
        return last === null ? 0 : last.last + 1;
      },
      lease(count: number): Promise<number> {
        if (peer === null || peer.destroyed) {
          return Promise.reject(new Error(`the tree that took over (pid ${child.pid}) is gone`));
        }
        const id = nextLeaseId++;
        const granted = new Promise<number>((resolve, reject) =>
          pendingLeases.set(id, { resolve, reject })
        );
        send({ type: "lease", id, count });
        return granted.then((first) => {
          last = { first, last: first + count - 1 };
          return first;
        });
      },
      close: () => Promise.resolve(),
      status: (): LeaseSourceStatus => ({
        description: `the tree that took over (pid ${child.pid})`,
        connected: peer !== null && !peer.destroyed,
        lastError: null,
        lastErrorAt: null,
        leaseErrors: 0,
        leases: 0,
        lastLease: last,
        next: last === null ? 0 : last.last + 1,
      }),
    };
  }

  function fail(reason: string): void {
    if (settled) {
      // After the takeover: the channel ends when either side exits; nothing to undo.
      cleanUp();
      return;
    }
    settled = true;
    clearTimeout(timer);
    const finish = async () => {
      await takeBack();
      rejectListening(
        new UpgradeFailedError(
          `upgrade failed: the new supervisor (pid ${child.pid ?? "none"}) did not take over: ` +
            `${reason}; this tree serves on`,
        ),
      );
    };
    finish().catch((error: Error) =>
      rejectListening(
        new UpgradeFailedError(
          `upgrade failed (${reason}) and the number source could not be opened again: ` +
            `${error.message}`,
        ),
      )
    );
  }

  /** Ends the new tree and leases again from this tree's own source, above all it reported. */
  async function takeBack(): Promise<void> {
    // The new tree must be gone before its numbers are counted: a state file's lock is free
    // only then, and a dead supervisor's children drain and stop leasing.
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    }
    // Its exit can be seen before the last reports it wrote are read: read the channel to its
    // end (bounded, in case a descriptor of it outlived the process).
    if (peer !== null && !ended) {
      await Promise.race([channelEnded, new Promise((resolve) => setTimeout(resolve, 2000))]);
    }
    cleanUp();
    if (releasing !== null) {
      // Every lease the new tree granted was reported before it was, so the source opened
      // again starts above whatever the new tree's processes could have served.
      const above = Math.max(await releasing, reported);
      options.supervisor.adoptSource(await options.reopen(above));
    }
  }

  function cleanUp(): void {
    if (cleanedUp) return;
    cleanedUp = true;
    process.off("exit", cleanUp);
    server.close();
    rmSync(directory, { recursive: true, force: true });
  }

  return {
    pid: child.pid ?? 0,
    listening,
    released: async () => {
      if (released) return true;
      released = true;
      if (!ended && peer !== null && !peer.destroyed) {
        await send({ type: "released" });
        // A new tree that does not answer within 5 s but keeps the channel open is alive.
        const answer = await Promise.race([
          taken.then(() => true),
          channelEnded.then(() => false),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 5000)),
        ]);
        if (answer) return true;
      }
      // It listened, then died before it took over alone: it reported every lease until then.
      await takeBack();
      return false;
    },
  };
}
