/**
 * Test fixture: the independent client (tests/fixtures/number_recorder.py, Python's standard
 * library only) that loads a server and records every number it is answered with, so a bug the
 * server and the project's own client share cannot hide.
 *
 * @module
 */

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const RECORDER = fileURLToPath(new URL("fixtures/number_recorder.py", import.meta.url));

/** What the recorder saw. */
export interface Recorded {
  numbers: number;
  repeats: number;
  decreases: number;
  refused: number;
  bad: number;
  first_repeats: number[];
  max: number;
  per_second: number[];
  /** How long it ran, in seconds (less than asked when stopped early). */
  seconds: number;
  /** Every number it got, sorted; only with `keep`. */
  all: number[];
}

/** Options for {@linkcode record}. */
export interface RecordOptions {
  /**
   * The most numbers to take in all (bounds the run whatever the server's speed).
   * @default {10_000_000}
   */
  maxNumbers?: number;
  /**
   * Connections' reads in flight before a pause (the recorder's pacing argument).
   * @default {2}
   */
  pace?: number;
  /**
   * Keep every number (in `all`), read back from a file the recorder writes.
   * @default {false}
   */
  keep?: boolean;
  /**
   * Ends the run early once aborted, as if `seconds` had passed: for a test that loads until
   * what it waits for has happened rather than for a fixed time.
   */
  signal?: AbortSignal;
}

/**
 * Runs the recorder against `port` for `seconds` over 4 connections of 256 lines in flight.
 *
 * @param port The server's port on 127.0.0.1.
 * @param seconds How long to load it.
 * @param options Bounds and what to keep.
 * @returns The recorder's figures.
 */
export function record(
  port: number,
  seconds: number,
  options: RecordOptions = {},
): Promise<Recorded> {
  const dir = options.keep ? mkdtempSync(join(tmpdir(), "tallyho-recorder-")) : null;
  const file = dir === null ? [] : [join(dir, "numbers")];
  const child = spawn(
    "python3",
    [
      RECORDER,
      String(port),
      "4",
      "256",
      String(seconds),
      String(options.maxNumbers ?? 10_000_000),
      String(options.pace ?? 2),
      ...file,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  let recording: () => void = () => {};
  const started = new Promise<void>((resolve) => (recording = resolve));
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => {
    err += chunk.toString();
    if (/^recording$/m.test(err)) recording();
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), (seconds + 30) * 1000);
  // Only once it handles SIGTERM (before that, the signal would kill it); and with process.kill:
  // Deno's node:child_process reports a child it signalled with child.kill as killed even when
  // the child caught the signal and exited 0 (denoland/deno#36643, as in tests/_server.ts).
  const stop = () =>
    started.then(() => {
      try {
        process.kill(child.pid!, "SIGTERM");
      } catch {
        // Already gone.
      }
    });
  if (options.signal?.aborted) stop();
  else options.signal?.addEventListener("abort", stop, { once: true });
  return new Promise<Recorded>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(killer);
      options.signal?.removeEventListener("abort", stop);
      try {
        recording(); // a stop still waiting has nothing left to wait for
        if (code !== 0) throw new Error(`number_recorder.py exited ${code}: ${err}`);
        const figures = { all: [], ...JSON.parse(out) } as Recorded;
        if (file[0] !== undefined) {
          figures.all = readFileSync(file[0], "utf8").split("\n").filter((l) => l !== "").map(
            Number,
          );
        }
        resolve(figures);
      } catch (error) {
        reject(error);
      }
    });
  }).finally(() => {
    if (dir !== null) rmSync(dir, { recursive: true, force: true });
  });
}
