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

// Linux's values (tallyho's binaries target Linux; glibc and musl both export __errno_location).
const LOCK_EX = 2;
const LOCK_NB = 4;
const EINTR = 4;
const EWOULDBLOCK = 11;

// The slice of bun:ffi used here, declared so that shared code never loads bun-types.
interface Libc {
  flock(fd: number, operation: number): number;
  __errno_location(): number;
}
interface BunFfi {
  dlopen(
    path: string,
    symbols: Record<keyof Libc, { args: string[]; returns: string }>,
  ): { symbols: Libc };
  read: { i32(pointer: number, offset?: number): number };
}

let loaded: { libc: Libc; ffi: BunFfi } | null = null;

// Loaded on first use through import.meta.require: a static `import "bun:ffi"` would stop Deno
// from loading the adapters module at all. The compiled binary carries bun:ffi as well.
function libc(): { libc: Libc; ffi: BunFfi } {
  if (loaded) return loaded;
  const ffi = (import.meta as unknown as { require(id: string): BunFfi }).require("bun:ffi");
  let lastError: unknown = null;
  for (const name of ["libc.so.6", "libc.so"]) {
    try {
      const symbols = ffi.dlopen(name, {
        flock: { args: ["i32", "i32"], returns: "i32" },
        __errno_location: { args: [], returns: "ptr" },
      }).symbols;
      loaded = { libc: symbols, ffi };
      return loaded;
    } catch (error) {
      lastError = error;
    }
  }
  throw new Error(`Cannot load the C library for flock: ${(lastError as Error).message}`);
}

/** Takes an exclusive `flock` on the file at `path`, or returns `null` if another holds it. */
export const tryLockFileBun: TryLockFile = (path) => {
  const { libc: c, ffi } = libc();
  const fd = openSync(path, constants.O_RDONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  let held = false;
  try {
    for (;;) {
      if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) break;
      const errno = ffi.read.i32(c.__errno_location());
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
