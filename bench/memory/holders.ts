/**
 * The memory benchmark's client: as many holder processes (holder.c, which shares no code with
 * the server) as the connections need under the open-file limit, each from source addresses of
 * its own, driven together: open and hold, ask every connection once more, close and collect
 * every first-reply N.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { builtCProgram } from "../native_client/native_client.ts";

const HERE = dirname(fileURLToPath(import.meta.url));

/** Connections one holder process opens: under the 20,000 open files a process may have here. */
export const PER_HOLDER = 15_000;
/**
 * Connections from one source address to the server's one address: `connect()` takes the
 * ephemeral ports of one parity first (14,116 of them with the stock range), then crawls (see
 * docs/tuning.md's million section), so each pair stays well under that.
 */
const PER_SOURCE = 8_000;

/**
 * The holder's path, built from holder.c on first use.
 *
 * @returns The executable.
 * @throws {NativeClientUnavailableError} Without a C compiler.
 */
export function holderPath(): string {
  return builtCProgram(
    join(HERE, "holder.c"),
    join(HERE, ".build", "holder"),
    "the memory benchmark's holder",
    "install one to run bench/memory.ts",
  );
}

/** Errors by kind, as holder.c names them. */
export type ErrorCounts = Record<string, number>;

interface HolderEvent {
  event: "held" | "again";
  held?: number;
  failed?: number;
  answered?: number;
  same?: number;
  errors: ErrorCounts;
  ms?: number;
}

/** What the holders did. */
export interface HoldOutcome {
  /** Connections held once every holder had set up. */
  held: number;
  failed: number;
  /** The longest set-up of any holder (ms). */
  setupMs: number;
  errors: ErrorCounts;
}

function addErrors(into: ErrorCounts, from: ErrorCounts): void {
  for (const [kind, count] of Object.entries(from)) into[kind] = (into[kind] ?? 0) + count;
}

class Holder {
  readonly child: ChildProcess;
  readonly numbersFile: string;
  readonly #events: HolderEvent[] = [];
  #waiting: ((event: HolderEvent) => void) | null = null;
  readonly exited: Promise<number | string>;

  constructor(binary: string, args: string[], numbersFile: string) {
    this.numbersFile = numbersFile;
    this.child = spawn(binary, [...args, "--numbers", numbersFile], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    this.exited = new Promise((resolve) =>
      this.child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown"))
    );
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      let event: HolderEvent;
      try {
        event = JSON.parse(line) as HolderEvent;
      } catch {
        return;
      }
      const waiting = this.#waiting;
      this.#waiting = null;
      if (waiting === null) this.#events.push(event);
      else waiting(event);
    });
  }

  /** The next event it prints, or a rejection when it exits first. */
  next(): Promise<HolderEvent> {
    const queued = this.#events.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return Promise.race([
      new Promise<HolderEvent>((resolve) => (this.#waiting = resolve)),
      this.exited.then((code) => {
        throw new Error(`a holder exited (${code}) before it reported`);
      }),
    ]);
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }
}

/** Holder processes holding connections to one server. */
export class Holders {
  readonly #holders: Holder[];

  private constructor(holders: Holder[]) {
    this.#holders = holders;
  }

  /**
   * Starts the holders and waits until every one has set up (held or failed each connection).
   *
   * @param options Where to connect, how many, how fast, where the numbers go.
   * @returns The holders, and what they hold.
   */
  static async hold(options: {
    port: number;
    connections: number;
    inFlight: number;
    setupMs: number;
    lifeMs: number;
    dir: string;
  }): Promise<{ holders: Holders; outcome: HoldOutcome }> {
    const binary = holderPath();
    const count = Math.ceil(options.connections / PER_HOLDER);
    const holders: Holder[] = [];
    for (let h = 0; h < count; h++) {
      const share = Math.floor(options.connections / count) +
        (h < options.connections % count ? 1 : 0);
      holders.push(
        new Holder(binary, [
          "--port",
          String(options.port),
          "--connections",
          String(share),
          // Holder h connects from 127.1.h.1 and the addresses after it.
          "--source",
          `127.1.${h}.1`,
          "--sources",
          String(Math.ceil(share / PER_SOURCE)),
          "--in-flight",
          String(Math.max(1, Math.floor(options.inFlight / count))),
          "--setup-ms",
          String(options.setupMs),
          "--life-ms",
          String(options.lifeMs),
        ], join(options.dir, `numbers-${h}.bin`)),
      );
    }
    const group = new Holders(holders);
    try {
      const events = await Promise.all(holders.map((holder) => holder.next()));
      const outcome: HoldOutcome = { held: 0, failed: 0, setupMs: 0, errors: {} };
      for (const event of events) {
        outcome.held += event.held ?? 0;
        outcome.failed += event.failed ?? 0;
        outcome.setupMs = Math.max(outcome.setupMs, event.ms ?? 0);
        addErrors(outcome.errors, event.errors);
      }
      return { holders: group, outcome };
    } catch (error) {
      group.kill();
      throw error;
    }
  }

  /**
   * Sends one more message on every held connection and waits for every reply.
   *
   * @returns Replies, replies whose N was the connection's first N, and errors.
   */
  async askAgain(): Promise<{ answered: number; same: number; errors: ErrorCounts }> {
    for (const holder of this.#holders) holder.send("again");
    const events = await Promise.all(this.#holders.map((holder) => holder.next()));
    const errors: ErrorCounts = {};
    for (const event of events) addErrors(errors, event.errors);
    return {
      answered: events.reduce((sum, event) => sum + (event.answered ?? 0), 0),
      same: events.reduce((sum, event) => sum + (event.same ?? 0), 0),
      errors,
    };
  }

  /**
   * Closes every connection and collects the first-reply Ns of all holders.
   *
   * @returns Every N, in no particular order.
   */
  async close(): Promise<Float64Array> {
    for (const holder of this.#holders) holder.child.stdin!.end();
    await Promise.all(this.#holders.map((holder) => holder.exited));
    const parts = this.#holders.map((holder) => {
      try {
        const bytes = readFileSync(holder.numbersFile);
        rmSync(holder.numbersFile, { force: true });
        // Copied: a Buffer's offset in its pool need not be a multiple of 8.
        const words = new BigUint64Array(new Uint8Array(bytes).buffer, 0, bytes.length >> 3);
        return Float64Array.from(words, Number);
      } catch {
        return new Float64Array(0);
      }
    });
    const all = new Float64Array(parts.reduce((sum, part) => sum + part.length, 0));
    let at = 0;
    for (const part of parts) {
      all.set(part, at);
      at += part.length;
    }
    return all;
  }

  /** Kills every holder at once (on an error or a signal). */
  kill(): void {
    for (const holder of this.#holders) holder.child.kill("SIGKILL");
  }
}

/**
 * How many Ns appear more than once.
 *
 * @param numbers Every N received.
 * @returns The count of repeated Ns (an N received three times counts twice).
 */
export function countRepeats(numbers: Float64Array): number {
  const sorted = numbers.slice().sort();
  let repeats = 0;
  for (let i = 1; i < sorted.length; i++) if (sorted[i] === sorted[i - 1]) repeats++;
  return repeats;
}
