/**
 * The lock that keeps a state file to one server. Correctness rests only on a kernel lock
 * (`flock`) on the file `STATE.lock`: the kernel drops it when its holder exits in any way, so a
 * lock file left behind by `kill -9` is simply locked again, and no process ever decides that
 * another is dead (the old pid check let two starters each delete the other's fresh lock file).
 *
 * The lock file is removed on release, while still locked, so a process that opened it just
 * before could end up locking a file no longer in the directory. Every taker therefore checks,
 * after locking, that the path still names the file it locked, and starts again if not.
 * The pid written into the file is for people only.
 *
 * @module
 */

import {
  closeSync,
  constants,
  ftruncateSync,
  lstatSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import process from "node:process";
import type { HeldFileLock, TryLockFile } from "../../../adapters/file_lock.ts";
import { assertPrivateStateDirectory } from "./state_directory.ts";
import { StateFileError } from "./state_file_error.ts";
import { fileErrorReason } from "../../../common/file_error.ts";

const ATTEMPTS = 10;

/** A held lock on a state file. */
export class StateLock {
  readonly path: string;
  readonly #held: HeldFileLock;
  #released = false;

  /** @internal Made by {@linkcode lockStateFile}. */
  constructor(path: string, held: HeldFileLock) {
    this.path = path;
    this.#held = held;
  }

  /** Whether the lock file's path still names the file this process locked. */
  isNamed(): boolean {
    return !this.#released && namesFile(this.path, this.#held);
  }

  /**
   * Removes the lock file (if it is still this lock's) and releases the kernel lock, which is
   * released even when the removal fails.
   *
   * @throws {StateFileError} When the lock file could not be removed (a read-only directory).
   */
  release(): void {
    // Once only: the file it locked is gone, and the one at the path now may be another
    // server's (an upgrade's new tree) with the same inode number, which it must not remove.
    if (this.#released) return;
    let problem: string | null = null;
    try {
      if (this.isNamed()) unlinkSync(this.path);
    } catch (error) {
      problem = (error as { code?: string }).code ?? (error as Error).message;
    } finally {
      this.#released = true;
      this.#held.close();
    }
    if (problem !== null) {
      throw new StateFileError(
        `Could not remove the lock file ${this.path} (${problem}); its kernel lock is ` +
          `released all the same, so the file blocks no later start`,
      );
    }
  }
}

function namesFile(path: string, held: HeldFileLock): boolean {
  try {
    const stat = lstatSync(path);
    return stat.isFile() && stat.dev === held.dev && stat.ino === held.ino;
  } catch {
    return false;
  }
}

// The pid is written through a descriptor of its own, closed at once: closing it does not release
// the lock, which belongs to the lock's own open file (flock, unlike fcntl locks). Written over
// the old content and then cut to length, never truncated first, so a starter that reads the file
// meanwhile finds a pid (the old one, or the new one followed by a newline) rather than nothing.
function writePid(lockPath: string): void {
  const fd = openSync(lockPath, constants.O_WRONLY | constants.O_NOFOLLOW);
  try {
    const bytes = new TextEncoder().encode(`${process.pid}\n`);
    for (let done = 0; done < bytes.length;) {
      const wrote = writeSync(fd, bytes, done, bytes.length - done, done);
      if (!(wrote > 0)) throw new Error(`wrote ${done} of ${bytes.length} bytes of the pid`);
      done += wrote;
    }
    ftruncateSync(fd, bytes.length);
  } finally {
    closeSync(fd);
  }
}

function holderOf(lockPath: string): string {
  try {
    const pid = Number.parseInt(readFileSync(lockPath, "utf8"), 10);
    return Number.isInteger(pid) && pid > 0 ? `pid ${pid}` : "pid not yet written";
  } catch {
    return "pid unknown";
  }
}

/**
 * Takes the lock of a state file after checking that no other user can write its directory.
 *
 * @param path The state file; the lock file is `${path}.lock`.
 * @param tryLockFile The runtime's file lock (the runtime adapter's `tryLockFile`).
 * @returns The held lock.
 * @throws {StateFileError} When another process holds it, or it cannot be taken.
 */
export function lockStateFile(path: string, tryLockFile: TryLockFile): StateLock {
  assertPrivateStateDirectory(path);
  const lockPath = `${path}.lock`;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    let held: HeldFileLock | null;
    try {
      held = tryLockFile(lockPath);
    } catch (error) {
      // Removed between our open and our lock by a holder releasing it: take the new one.
      if ((error as { code?: string }).code === "ENOENT" && attempt < ATTEMPTS - 1) continue;
      throw new StateFileError(
        `Cannot lock state file ${path}: ${lockPath}: ${fileErrorReason(error)}`,
      );
    }
    if (held === null) {
      throw new StateFileError(
        `State file ${path} is in use by another tallyho (${holderOf(lockPath)}, lock ${lockPath})`,
      );
    }
    // The holder before us removed the file after we opened it: lock the one now there.
    if (!namesFile(lockPath, held)) {
      held.close();
      continue;
    }
    try {
      writePid(lockPath);
    } catch (error) {
      held.close();
      throw new StateFileError(`Cannot lock state file ${path}: ${(error as Error).message}`);
    }
    return new StateLock(lockPath, held);
  }
  throw new StateFileError(
    `Cannot lock state file ${path}: its lock file ${lockPath} was replaced ${ATTEMPTS} times ` +
      `while taking it`,
  );
}
