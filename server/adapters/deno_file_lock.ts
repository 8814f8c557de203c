/**
 * The Deno adapter of {@linkcode TryLockFile}: `Deno.FsFile.tryLockSync(true)`, which on Linux is
 * `flock(LOCK_EX | LOCK_NB)` (checked against util-linux `flock -n` on Deno 2.9.6), so a Bun and
 * a Deno tallyho on one state file exclude each other. It needs no permission beyond the file's.
 *
 * Deno opens files with `O_CLOEXEC` (Rust's standard library always does), so spawned processes
 * do not inherit the lock. `Deno.openSync` has no `O_NOFOLLOW`, so a symlink is refused by `lstat`
 * before opening, and the caller compares the opened file's inode with the path's afterwards.
 *
 * @module
 */

import { lstatSync } from "node:fs";
import type { HeldFileLock, TryLockFile } from "./file_lock.ts";

/** Takes an exclusive lock on the file at `path`, or returns `null` if another holds it. */
export const tryLockFileDeno: TryLockFile = (path) => {
  try {
    if (lstatSync(path).isSymbolicLink()) {
      throw Object.assign(new Error(`ELOOP: ${path} is a symbolic link`), { code: "ELOOP" });
    }
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOENT") throw error;
  }
  const file = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
  let held = false;
  try {
    if (!file.tryLockSync(true)) return null;
    const stat = file.statSync();
    held = true;
    return new DenoHeldLock(file, stat.dev, stat.ino ?? -1);
  } finally {
    if (!held) file.close();
  }
};

class DenoHeldLock implements HeldFileLock {
  #file: Deno.FsFile | null;
  constructor(file: Deno.FsFile, readonly dev: number, readonly ino: number) {
    this.#file = file;
  }

  write(text: string): void {
    const file = this.#file;
    if (file === null) return;
    const bytes = new TextEncoder().encode(text);
    file.truncateSync(0);
    file.seekSync(0, Deno.SeekMode.Start);
    for (let done = 0; done < bytes.length;) {
      const wrote = file.writeSync(bytes.subarray(done));
      if (wrote <= 0) throw new Error(`wrote ${done} of ${bytes.length} bytes`);
      done += wrote;
    }
  }

  close(): void {
    if (this.#file === null) return;
    const file = this.#file;
    this.#file = null;
    file.close();
  }
}
