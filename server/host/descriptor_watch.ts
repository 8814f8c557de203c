/**
 * Watches a serving process's file descriptors, so a process that runs out of them refuses new
 * connections at once (counted) instead of leaving them in the kernel's accept queue until the
 * client gives up.
 *
 * At the open-file limit `accept()` fails with `EMFILE` and the connection stays queued. Bun
 * 1.4.5's listener retries at once, spinning a core and reporting nothing (oven-sh/bun#32705);
 * Deno's `accept()` rejects and the adapter backs off (denoland/deno#10148): either way the
 * client waits, answered by no one, until its own timeout. Twelve clients did so in a review.
 * The remedy is libuv's "EMFILE trick" (joyent/libuv#315), done from outside the runtime: the
 * process holds a few descriptors in reserve; when a probe finds none left to open it releases
 * them and raises a flag the connection gate reads, so the accept loop gets descriptors again
 * and every connection it accepts is closed at once and counted (`rejectedNoDescriptors`),
 * draining the queue, while the connections already open are served. Once the reserve and a
 * margin above it can be opened again, the flag drops and new connections are served.
 *
 * @module
 */

import { closeSync, openSync } from "node:fs";

/** Options for {@linkcode DescriptorWatch}. */
export interface DescriptorWatchOptions {
  /**
   * How often the probe runs, in milliseconds: the longest a client waits before it is refused.
   * @default {250}
   */
  everyMs?: number;
  /**
   * Descriptors held back while all is well and released when none is left.
   * @default {8}
   */
  reserve?: number;
  /**
   * Descriptors that must be free beyond the reserve before new connections are served again
   * (so it does not flap at the limit).
   * @default {16}
   */
  margin?: number;
  /** Told when the process runs out of descriptors (`true`) and when it has some again. */
  onChange: (out: boolean) => void;
  /**
   * Opens one descriptor (tests replace it to run out on cue).
   * @default {opens /dev/null}
   */
  open?: () => number;
  /**
   * Closes one.
   * @default {closeSync}
   */
  close?: (fd: number) => void;
}

/** Whether an error says the process (or the system) is out of descriptors. */
function isOutOfDescriptors(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === "EMFILE" || code === "ENFILE";
}

/** Watches one process's descriptors; see the module's description. */
export class DescriptorWatch {
  readonly #size: number;
  readonly #margin: number;
  readonly #onChange: (out: boolean) => void;
  readonly #open: () => number;
  readonly #close: (fd: number) => void;
  readonly #timer: ReturnType<typeof setInterval>;
  #held: number[] = [];
  #out = false;

  /** @param options When to probe and whom to tell. */
  constructor(options: DescriptorWatchOptions) {
    this.#size = options.reserve ?? 8;
    this.#margin = options.margin ?? 16;
    this.#onChange = options.onChange;
    this.#open = options.open ?? (() => openSync("/dev/null", "r"));
    this.#close = options.close ?? closeSync;
    this.#take(this.#size);
    this.#timer = setInterval(() => this.check(), options.everyMs ?? 250);
  }

  /** Whether the process is out of descriptors now (new connections are refused). */
  get out(): boolean {
    return this.#out;
  }

  /** One probe (run on the timer; tests call it directly). */
  check(): void {
    if (!this.#out) {
      // Refilled first: a reserve short since the start (or the last time) is taken when it can be.
      const ok = this.#take(this.#size + 1);
      if (ok) {
        this.#release(this.#held.length - this.#size);
        return;
      }
      // The flag first, then the reserve: the accept loop (another thread, spinning on EMFILE)
      // takes a released descriptor at once, and must find the flag raised by then, or it serves
      // with it and the reserve is gone before the queue is drained (seen: 8 more served, the
      // 28 queued behind them left waiting).
      this.#out = true;
      this.#onChange(true);
      this.#release(this.#held.length);
      return;
    }
    if (this.#take(this.#size + this.#margin)) {
      this.#release(this.#margin);
      this.#out = false;
      this.#onChange(false);
    } else {
      this.#release(this.#held.length);
    }
  }

  /** Stops probing and gives the reserve back. */
  stop(): void {
    clearInterval(this.#timer);
    this.#release(this.#held.length);
  }

  /** Opens descriptors until `count` are held; false if the process ran out first. */
  #take(count: number): boolean {
    while (this.#held.length < count) {
      try {
        this.#held.push(this.#open());
      } catch (error) {
        // Anything but running out (no /dev/null in a bare chroot) cannot tell: assume enough.
        return !isOutOfDescriptors(error);
      }
    }
    return true;
  }

  /** Closes the last `count` descriptors held. */
  #release(count: number): void {
    for (let i = 0; i < count; i++) {
      const fd = this.#held.pop();
      if (fd === undefined) return;
      this.#close(fd);
    }
  }
}
