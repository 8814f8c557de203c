/**
 * The Deno adapter of {@linkcode TryLockFile}: `Deno.FsFile.tryLockSync(true)`, which on Linux is
 * `flock(LOCK_EX | LOCK_NB)` (checked against util-linux `flock -n` on Deno 2.9.6), so a Bun and
 * a Deno tallyho on one state file exclude each other. It needs no permission beyond the file's.
 *
 * Deno opens files with `O_CLOEXEC` (Rust's standard library always does), so spawned processes
 * do not inherit the lock. `Deno.openSync` has no `O_NOFOLLOW` and cannot create a file it opens
 * read-only, so the file is created by `node:fs` with `O_NOFOLLOW`, a symlink is refused by
 * `lstat` before `Deno.openSync`, and the caller compares the locked file's inode with the path's.
 *
 * @module
 */

import { closeSync, constants, lstatSync, openSync } from "node:fs";
import type { HeldFileLock, TryLockFile } from "./file_lock.ts";

/** Takes an exclusive lock on the file at `path`, or returns `null` if another holds it. */
export const tryLockFileDeno: TryLockFile = (path) => {
  closeSync(openSync(path, constants.O_RDONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600));
  if (lstatSync(path).isSymbolicLink()) {
    throw Object.assign(new Error(`ELOOP: ${path} is a symbolic link`), { code: "ELOOP" });
  }
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (error) {
    // Removed by a holder releasing it just now: the caller takes the new one.
    if (error instanceof Deno.errors.NotFound) throw Object.assign(error, { code: "ENOENT" });
    throw error;
  }
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

  close(): void {
    if (this.#file === null) return;
    const file = this.#file;
    this.#file = null;
    file.close();
  }
}
