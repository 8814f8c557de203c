/**
 * The old supervisor's side of an upgrade (`kill -USR2`, `POST /v1/upgrade`): starts the program
 * again as a new supervisor tree, hands it the number space over a socket pair the new one
 * inherits (no path: nobody else can reach it), and either hands it the port too or, when the new
 * tree fails to come up, takes the numbers back and serves on. The steps are described in
 * `_upgrade_messages.ts`.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import type { Duplex } from "node:stream";
import process from "node:process";
import type { LeaseSource, LeaseSourceStatus } from "../lease/lease_source.ts";
import { monotonicNow } from "../common/clock.ts";
import { readJsonLines, writeJsonLine } from "../common/json_lines.ts";
import type { Supervisor } from "./supervisor.ts";
import {
  type FromSuccessor,
  type ToSuccessor,
  UPGRADE_CHANNEL_ENV,
  UPGRADE_CHANNEL_FD,
} from "./_upgrade_messages.ts";
import { PendingRequests } from "../common/pending_requests.ts";

export { UPGRADE_CHANNEL_ENV, UPGRADE_CHANNEL_FD } from "./_upgrade_messages.ts";

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
  /** The new supervisor's environment (the handover channel's variable is added). */
  env: Record<string, string | undefined>;
  /** The admin API's port, or null without one. */
  adminPort: number | null;
  /**
   * Descriptors the new supervisor inherits (the admin API's listening socket), each told to it
   * by its number there in the environment variable `env`; they follow the handover channel
   * (descriptor 4 on).
   * @default {[]}
   */
  inherit?: { fd: number; env: string }[];
  /** Opens the number source again after a failed upgrade, above `mark` for numbers in memory. */
  reopen(mark: number): Promise<LeaseSource>;
  /**
   * This tree's tallyho version and runtime, told to the new tree for its log.
   * @default {""}
   */
  version?: string;
  /**
   * How long the new supervisor may take to say hello, and then to listen.
   * @default {60000}
   */
  timeoutMs?: number;
  /**
   * Receives what the handover has to say while it takes the numbers back after a failed
   * upgrade (the source cannot be opened again yet, and when it can).
   * @default {nothing}
   */
  log?: (line: string, level?: "info" | "warn" | "error") => void;
  /**
   * The longest wait, in ms, between two tries to open the number source again after a failed
   * upgrade (the waits double from 100 ms up to it).
   * @default {2000}
   */
  reopenRetryMaxMs?: number;
}

/** A handover under way. */
export interface Handover {
  /** The new supervisor's pid. */
  readonly pid: number;
  /**
   * Resolves once the new tree listens with every process holding numbers (both trees accept
   * now), with the milliseconds since the start; rejects with {@linkcode UpgradeFailedError} once
   * the new tree is gone: this tree serves on, and `recovered` says when it leases again.
   */
  readonly listening: Promise<number>;
  /**
   * Resolves once this tree leases from its own source again after a failed upgrade (opening it
   * again is retried until it works, or this tree stops), or at once when it never let it go.
   * Never resolves for an upgrade that worked.
   */
  readonly recovered: Promise<void>;
  /** Why the source is not open again yet, while `recovered` is pending after a failure. */
  readonly recovering: string | null;
  /** What the new tree said it runs (`tallyho 1.2.3 (bun 1.4.5)`), once it said hello. */
  readonly successorVersion: string | null;
  /** Tells the new tree that this one's admin API no longer listens, so it can bind the port. */
  adminFree(): Promise<void>;
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
 * @throws {UpgradeFailedError} When the program cannot be started at all (missing, not
 * executable): nothing was given up, and this tree serves on.
 */
export function startHandover(options: HandoverOptions): Handover {
  const started = monotonicNow();
  const timeoutMs = options.timeoutMs ?? 60_000;
  const log = options.log ?? (() => {});
  assertRunnable(options.command);
  // The channel is a socket pair: this end is `child.stdio[3]`, the other the new supervisor's
  // descriptor 3. Bun 1.4 and Deno 2.9 both make it one for an extra "pipe" entry.
  const inherit = options.inherit ?? [];
  let child: ChildProcess;
  try {
    child = spawn(options.command, options.args, {
      stdio: ["ignore", "inherit", "inherit", "pipe", ...inherit.map(({ fd }) => fd)],
      env: {
        ...options.env,
        [UPGRADE_CHANNEL_ENV]: String(UPGRADE_CHANNEL_FD),
        ...Object.fromEntries(
          inherit.map(({ env }, i) => [env, String(UPGRADE_CHANNEL_FD + 1 + i)]),
        ),
      },
    });
  } catch (error) {
    // Bun 1.4 throws at once for a file that is no program (ENOEXEC).
    const code = (error as { code?: string }).code ?? (error as Error).message;
    throw new UpgradeFailedError(
      `Cannot upgrade: ${options.command} cannot be run (${code}); this tree serves on`,
    );
  }
  // A program that cannot be run gets no pid, then an `error` event and no `exit` (Bun and Deno
  // alike): nothing was started, nothing given up.
  const channel = child.stdio[UPGRADE_CHANNEL_FD] as Duplex | null | undefined;
  if (child.pid === undefined || channel === null || channel === undefined) {
    child.on("error", () => {});
    throw new UpgradeFailedError(
      `Cannot upgrade: ${options.command} could not be started; this tree serves on`,
    );
  }
  const pid = child.pid;
  /** Resolves once the new supervisor has exited. */
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let released = false;
  let successorVersion: string | null = null;
  /** The release of this tree's source, once the new supervisor said hello. */
  let releasing: Promise<number> | null = null;
  let reported = -Infinity;
  /** Whether this tree's processes lease through the new tree now (it opened its source). */
  let adopted = false;
  /** The end of the highest block the new tree granted this tree's processes. */
  let granted = -Infinity;
  const leases = new PendingRequests<number>();
  let resolveListening: (ms: number) => void = () => {};
  let rejectListening: (error: Error) => void = () => {};
  const listening = new Promise<number>((resolve, reject) => {
    resolveListening = resolve;
    rejectListening = reject;
  });
  let resolveRecovered: () => void = () => {};
  const recovered = new Promise<void>((resolve) => (resolveRecovered = resolve));
  let recovering: string | null = null;
  let settled = false;
  /** Whether the channel has ended: every report the new tree wrote has been read. */
  let ended = false;
  let onEnded: () => void = () => {};
  let onTaken: () => void = () => {};
  const taken = new Promise<void>((resolve) => (onTaken = resolve));
  const channelEnded = new Promise<void>((resolve) => (onEnded = resolve));
  channel.on("error", () => {});
  readJsonLines<FromSuccessor>(channel, {
    onMessage: (message) => onMessage(message),
    onEnd: () => {
      ended = true;
      onEnded();
      leases.failAll(new Error(`the tree that took over (pid ${pid}) is gone`));
      fail("it closed the handover channel");
    },
  });
  child.on("error", (error) => fail(`it could not be started: ${error.message}`));
  child.once("exit", (code, signal) => fail(`it exited (${signal ?? `code ${code}`})`));
  const timer = setTimeout(
    () => fail(`it did not take over within ${timeoutMs} ms`),
    timeoutMs,
  );

  const send = (message: ToSuccessor) =>
    channel.destroyed ? Promise.resolve() : writeJsonLine(channel, message);

  async function onMessage(message: FromSuccessor): Promise<void> {
    switch (message.type) {
      case "hello": {
        if (releasing !== null || settled) return;
        successorVersion = typeof message.version === "string" ? message.version : null;
        releasing = options.supervisor.releaseSource();
        const mark = await releasing;
        if (settled) return; // failed while the leases in flight finished: fail() reopens
        await send({
          type: "handover",
          pid: process.pid,
          port: options.supervisor.port,
          adminPort: options.adminPort,
          mark,
          ...(options.version === undefined ? {} : { version: options.version }),
        });
        break;
      }
      case "leased":
        reported = Math.max(reported, message.last);
        break;
      case "source-open":
        if (settled || releasing === null || adopted) return;
        // Its source is open: this tree's processes lease through it while it starts, rather
        // than wait (and run out of numbers under load) until it listens.
        await releasing;
        if (settled || adopted) return;
        adopted = true;
        options.supervisor.adoptSource(successorSource());
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
        if (!adopted) options.supervisor.adoptSource(successorSource());
        adopted = true;
        child.unref();
        resolveListening(monotonicNow() - started);
        break;
      case "grant":
        leases.answer(message.id, message.first);
        break;
      case "deny":
        leases.fail(message.id, new Error(message.message));
        break;
    }
  }

  /** Leases through the tree that took over: this tree's processes still serve open connections. */
  function successorSource(): LeaseSource {
    let last: { first: number; last: number } | null = null;
    return {
      description: `the tree that took over (pid ${pid})`,
      get next() {
        return last === null ? 0 : last.last + 1;
      },
      lease(count: number): Promise<number> {
        if (ended || channel!.destroyed) {
          return Promise.reject(new Error(`the tree that took over (pid ${pid}) is gone`));
        }
        const answer = leases.ask((id) => void send({ type: "lease", id, count }));
        return answer.then((first) => {
          last = { first, last: first + count - 1 };
          granted = Math.max(granted, last.last);
          return first;
        });
      },
      close: () => Promise.resolve(),
      status: (): LeaseSourceStatus => ({
        description: `the tree that took over (pid ${pid})`,
        connected: !ended && !channel!.destroyed,
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
    if (settled) return; // After the takeover: the channel ends when either side exits.
    settled = true;
    clearTimeout(timer);
    const failed = new UpgradeFailedError(
      `upgrade failed: the new supervisor (pid ${pid}) did not take over: ${reason}; ` +
        `this tree serves on`,
    );
    takeBack().then(
      (reopen) => {
        rejectListening(failed);
        return recover(reopen);
      },
      (error: Error) => {
        // A bug: say so rather than leave the upgrade under way for good.
        rejectListening(failed);
        log(`upgrade: taking the numbers back failed: ${error.stack ?? error.message}`, "error");
      },
    );
  }

  /** Opens this tree's source again, if it was let go, and then resolves `recovered`. */
  async function recover(reopen: (() => Promise<void>) | null): Promise<void> {
    if (reopen !== null) {
      recovering ??= "opening it again";
      await reopen();
    }
    resolveRecovered();
  }

  /**
   * Ends the new tree and waits until it is gone and every report it wrote has been read. Returns
   * what then opens this tree's own source again (above all it reported), or null when this tree
   * never let its source go.
   */
  async function takeBack(): Promise<(() => Promise<void>) | null> {
    // The new tree must be gone before its numbers are counted: a state file's lock is free
    // only then, and a dead supervisor's children drain and stop leasing.
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
    // Its exit can be seen before the last reports it wrote are read: read the channel to its
    // end (bounded: on Deno 2.9 the new tree's own children inherit their copy of the channel,
    // as node:child_process there closes no inherited descriptor, and hold it until they exit).
    if (!ended) {
      await Promise.race([channelEnded, new Promise((resolve) => setTimeout(resolve, 2000))]);
    }
    channel!.destroy();
    const release = releasing;
    if (release === null) return null;
    let mark = await release;
    // Leasing through the new tree: leases wait again (those in flight through it failed as the
    // channel ended) until the source is open again.
    if (adopted) mark = Math.max(mark, await options.supervisor.releaseSource());
    // Every lease the new tree granted itself was reported before it was, and this tree saw
    // every grant to its own processes: the source opened again starts above all of them.
    const above = Math.max(mark, reported, granted);
    return () => reopenUntilOpen(above);
  }

  /**
   * Opens this tree's source again and leases from it, trying again with growing waits while it
   * cannot be opened (Redis or etcd unreachable, a state directory read-only or full): the
   * processes serve from what they hold meanwhile, and `/readyz` says when they have run out.
   */
  async function reopenUntilOpen(above: number): Promise<void> {
    const maxWaitMs = options.reopenRetryMaxMs ?? 2000;
    let waitMs = 100;
    let failures = 0;
    let loggedAt = -Infinity;
    for (;;) {
      try {
        const source = await options.reopen(above);
        if (isStopping(options.supervisor)) {
          await source.close();
          return;
        }
        options.supervisor.adoptSource(source);
        recovering = null;
        if (failures > 0) {
          log(
            `upgrade: the number source is open again after ${failures} failed ` +
              `tr${failures === 1 ? "y" : "ies"}; leasing above ${above}`,
          );
        }
        return;
      } catch (error) {
        failures++;
        recovering = (error as Error).message;
        // Said at the first failure and then every 30 s, not at every try.
        if (monotonicNow() - loggedAt >= 30_000) {
          loggedAt = monotonicNow();
          log(
            `upgrade: cannot open the number source again yet: ${recovering}; its processes ` +
              `serve from the numbers they hold, trying again every ${maxWaitMs} ms at most`,
            "error",
          );
        }
      }
      if (isStopping(options.supervisor)) return;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      waitMs = Math.min(waitMs * 2, maxWaitMs);
    }
  }

  return {
    pid,
    listening,
    recovered,
    get recovering() {
      return recovering;
    },
    get successorVersion() {
      return successorVersion;
    },
    adminFree: () => send({ type: "admin-free" }),
    released: async () => {
      if (released) return true;
      released = true;
      if (!ended && !channel.destroyed) {
        await send({ type: "released" });
        // A new tree that does not answer within 5 s but lives and keeps the channel open is
        // alive. Its exit counts as gone even while its children (Deno) still hold the channel.
        const answer = await Promise.race([
          taken.then(() => true),
          channelEnded.then(() => false),
          exited.then(() => false),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 5000)),
        ]);
        if (answer) return true;
      }
      // It listened, then died before it took over alone: it reported every lease until then.
      // This tree accepts again at once and serves from what its processes hold while its
      // source opens again (retried while it cannot be).
      recovering = "opening it again";
      recover(await takeBack()).catch((error: Error) =>
        log(`upgrade: taking the numbers back failed: ${error.stack ?? error.message}`, "error")
      );
      return false;
    },
  };
}

/** Whether the supervisor (or a stand-in without the flag) is stopping. */
function isStopping(supervisor: Supervisor): boolean {
  return (supervisor as { stopping?: boolean }).stopping === true;
}

/**
 * Checks that `command` can be run, so that an upgrade to a binary moved away or made
 * non-executable mid-deploy is refused at once, before anything is given up.
 *
 * @throws {UpgradeFailedError} Naming the program and why.
 */
function assertRunnable(command: string): void {
  if (!command.includes("/")) return; // found through PATH by spawn; its failure is caught there
  try {
    accessSync(command, constants.X_OK);
  } catch (error) {
    const code = (error as { code?: string }).code ?? (error as Error).message;
    throw new UpgradeFailedError(
      `Cannot upgrade: ${command} cannot be run (${code}): put the new program at that path, ` +
        `executable, and try again; this tree serves on`,
    );
  }
}
