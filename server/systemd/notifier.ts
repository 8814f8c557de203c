/**
 * Tells systemd how the service is doing (sd_notify(3)'s protocol): `READY=1` once every serving
 * process listens, `STATUS=` with a one-line summary, `RELOADING=1` then `READY=1` around a
 * configuration reload, `STOPPING=1` when draining, and `MAINPID=` when an upgrade's new
 * supervisor becomes the unit's main process. Each message is one datagram to `$NOTIFY_SOCKET`,
 * sent through the runtime's adapter (server/adapters/unix_datagram.ts).
 *
 * Outside systemd (`$NOTIFY_SOCKET` unset) it does nothing and loads nothing. A message that
 * cannot be sent is logged once per kind of failure and never stops the server: systemd then
 * sees no readiness and says so itself (a start timeout), which names the real problem.
 *
 * During an upgrade the old supervisor goes {@linkcode SystemdNotifier.quiet}: the unit runs
 * `NotifyAccess=all`, so a `STATUS=` or `STOPPING=1` from the old tree after the new one took
 * the main PID would be believed.
 *
 * @module
 */

import process from "node:process";
import type { OpenUnixDatagram, UnixDatagramSender } from "../adapters/unix_datagram.ts";
import { NOTIFY_SOCKET_ENV, notifySocketAddress } from "./notify_address.ts";

/** Options for {@linkcode SystemdNotifier.fromEnv}. */
export interface NotifierOptions {
  /** Where a failure to notify is reported (once per kind). */
  log: (line: string, level: "warn") => void;
  /**
   * This process's pid, sent as `MAINPID=`.
   * @default {process.pid}
   */
  pid?: number;
}

const encoder = new TextEncoder();

/** What systemd's `STATUS=` may hold: one line. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ").trim();
}

/** The service's side of sd_notify(3). */
export class SystemdNotifier {
  readonly #sender: UnixDatagramSender | null;
  readonly #log: (line: string, level: "warn") => void;
  readonly #pid: number;
  readonly #failures = new Set<string>();
  #quiet = false;
  #lastStatus: string | null = null;

  private constructor(sender: UnixDatagramSender | null, options: NotifierOptions) {
    this.#sender = sender;
    this.#log = options.log;
    this.#pid = options.pid ?? process.pid;
  }

  /**
   * A notifier for `$NOTIFY_SOCKET`, or one that does nothing when it is unset or unusable (said
   * once in the log).
   *
   * @param env The environment (the variable is left in place: an upgrade's new supervisor,
   * started with this environment, notifies the same socket).
   * @param open The runtime's datagram adapter.
   * @param options Where failures are logged.
   */
  static fromEnv(
    env: Record<string, string | undefined>,
    open: OpenUnixDatagram,
    options: NotifierOptions,
  ): SystemdNotifier {
    const value = env[NOTIFY_SOCKET_ENV];
    if (value === undefined || value === "") return new SystemdNotifier(null, options);
    try {
      return new SystemdNotifier(open(notifySocketAddress(value)), options);
    } catch (error) {
      options.log(
        `systemd: cannot notify ${NOTIFY_SOCKET_ENV}=${value}: ${(error as Error).message}`,
        "warn",
      );
      return new SystemdNotifier(null, options);
    }
  }

  /** Whether messages go anywhere: under systemd, and not {@linkcode quiet}. */
  get active(): boolean {
    return this.#sender !== null && !this.#quiet;
  }

  /**
   * Every serving process listens (at start, after a reload, or after taking over).
   *
   * @param status The one-line summary.
   * @param options `mainPid: true` when this process takes over as the unit's main process.
   */
  ready(status: string, options: { mainPid?: boolean } = {}): void {
    const main = options.mainPid === true ? [`MAINPID=${this.#pid}`] : [];
    this.#send([...main, "READY=1", this.#statusField(status)]);
  }

  /** A configuration reload starts; {@linkcode ready} ends it, applied or not. */
  reloading(status: string): void {
    this.#send(["RELOADING=1", this.#statusField(status)]);
  }

  /** The server drains and will exit. */
  stopping(status: string): void {
    this.#send(["STOPPING=1", this.#statusField(status)]);
  }

  /** The one-line summary, sent only when it changed. */
  status(text: string): void {
    if (oneLine(text) === this.#lastStatus) return;
    this.#send([this.#statusField(text)]);
  }

  /**
   * Sends nothing more until {@linkcode reclaim}: this process is, or may soon no longer be, the
   * unit's main process (an upgrade has started a new supervisor).
   *
   * @param status A last summary, sent before going quiet.
   */
  quiet(status: string): void {
    this.#send([this.#statusField(status)]);
    this.#quiet = true;
  }

  /**
   * Speaks again as the unit's main process, after an upgrade that failed: `MAINPID=` names this
   * process again, in case the new one had already taken it before it died.
   *
   * @param status The one-line summary.
   */
  reclaim(status: string): void {
    this.#quiet = false;
    this.ready(status, { mainPid: true });
  }

  /** Closes the socket. */
  close(): void {
    this.#sender?.close();
  }

  #statusField(text: string): string {
    this.#lastStatus = oneLine(text);
    return `STATUS=${this.#lastStatus}`;
  }

  #send(fields: string[]): void {
    if (!this.active) return;
    try {
      this.#sender!.send(encoder.encode(fields.join("\n")));
    } catch (error) {
      const message = (error as Error).message;
      if (this.#failures.has(message)) return;
      this.#failures.add(message);
      this.#log(`systemd: cannot notify (${fields[0]}): ${message}`, "warn");
    }
  }
}
