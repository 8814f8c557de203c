/**
 * The Bun adapter of {@linkcode TryLockFile}: `flock(2)` through `bun:ffi`, on a file opened with
 * `node:fs`. Bun 1.4.5 has no file lock API of its own, and `node:fs` has none either.
 *
 * `node:fs` on Bun returns the kernel's file descriptor and opens it with `O_CLOEXEC` (seen in
 * `/proc/self/fdinfo`), so the supervisor's child processes do not inherit the lock: it dies with
 * the supervisor alone. `O_NOFOLLOW` refuses a planted symlink.
 *
 * @module
 */

import { closeSync, constants, fstatSync, openSync } from "node:fs";
import type { HeldFileLock, TryLockFile } from "./file_lock.ts";
import { openLibc } from "./_libc.ts";

// Linux's values (tallyho's binaries target Linux; glibc and musl both export __errno_location).
const LOCK_EX = 2;
const LOCK_NB = 4;
const EINTR = 4;
const EWOULDBLOCK = 11;

interface Libc {
  flock(fd: number, operation: number): number;
}

let loaded: { libc: Libc; errno(): number } | null = null;

function libc(): { libc: Libc; errno(): number } {
  loaded ??= openLibc<Libc>({ flock: { args: ["i32", "i32"], returns: "i32" } }, "flock");
  return loaded;
}

/** Takes an exclusive `flock` on the file at `path`, or returns `null` if another holds it. */
export const tryLockFileBun: TryLockFile = (path) => {
  const { libc: c, errno: readErrno } = libc();
  const fd = openSync(path, constants.O_RDONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  let held = false;
  try {
    for (;;) {
      if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) break;
      const errno = readErrno();
      if (errno === EINTR) continue;
      if (errno === EWOULDBLOCK) return null;
      throw Object.assign(new Error(`flock failed with errno ${errno}`), { code: `E${errno}` });
    }
    const stat = fstatSync(fd);
    held = true;
    return new BunHeldLock(fd, stat.dev, stat.ino);
  } finally {
    if (!held) closeSync(fd);
  }
};

class BunHeldLock implements HeldFileLock {
  #fd: number | null;
  constructor(fd: number, readonly dev: number, readonly ino: number) {
    this.#fd = fd;
  }

  close(): void {
    // Once only: a second close could close an unrelated file that reused the number.
    if (this.#fd === null) return;
    const fd = this.#fd;
    this.#fd = null;
    closeSync(fd);
  }
}
