/**
 * Test harness: one process that takes and releases the state file's lock on command, so a test
 * can race two of them many times without paying a process start per trial.
 *
 * Reads lines on stdin: `lock PATH` answers `held` or `busy MESSAGE`; `release` answers
 * `released`; `churn PATH N` takes and releases the lock N times as fast as it can, and while
 * holding it creates `PATH.holder` exclusively (a second holder at that moment finds it there),
 * then answers `churned TAKEN DOUBLES`. Exits when stdin closes.
 *
 * @module
 */

import { rmSync, writeFileSync } from "node:fs";
import process from "node:process";
import { lockStateFile, type StateLock } from "../server/lease/sources/state_file/state_lock.ts";
import { runtime } from "../server/adapters/mod.ts";

let held: StateLock | null = null;
let pending = "";

function answer(line: string): void {
  if (line.startsWith("lock ")) {
    try {
      held = lockStateFile(line.slice(5), runtime.tryLockFile);
      process.stdout.write("held\n");
    } catch (error) {
      process.stdout.write(`busy ${(error as Error).message.replaceAll("\n", " ")}\n`);
    }
  } else if (line.startsWith("churn ")) {
    const [, path, times] = line.split(" ");
    let taken = 0;
    let doubles = 0;
    for (let i = 0; i < Number(times); i++) {
      let lock: StateLock;
      try {
        lock = lockStateFile(path!, runtime.tryLockFile);
      } catch {
        continue; // The other racer holds it.
      }
      taken++;
      try {
        writeFileSync(`${path}.holder`, `${process.pid}`, { flag: "wx" });
        rmSync(`${path}.holder`);
      } catch {
        doubles++;
      }
      lock.release();
    }
    process.stdout.write(`churned ${taken} ${doubles}\n`);
  } else if (line === "release") {
    held?.release();
    held = null;
    process.stdout.write("released\n");
  }
}

process.stdin.on("data", (chunk: Uint8Array) => {
  pending += new TextDecoder().decode(chunk);
  let end: number;
  while ((end = pending.indexOf("\n")) >= 0) {
    answer(pending.slice(0, end));
    pending = pending.slice(end + 1);
  }
});
process.stdin.on("end", () => process.exit(0));
process.stdout.write("ready\n");
