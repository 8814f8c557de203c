/**
 * The shape of a kernel file lock: an exclusive `flock(2)` lock that the kernel drops when its
 * holder exits in any way (`kill -9` included), so a lock left behind can never block a start and
 * no process ever has to guess whether another is dead.
 *
 * @module
 */

/** An open lock file whose exclusive kernel lock this process holds. */
export interface HeldFileLock {
  /** The device of the open file, to check that its path still names it. */
  readonly dev: number;
  /** The inode of the open file, to check that its path still names it. */
  readonly ino: number;
  /** Closes the file, which releases the lock. Safe to call more than once. */
  close(): void;
}

/**
 * Opens `path` read-only (creating it with mode 0600, never through a symlink, closed on exec so
 * that spawned processes do not inherit it) and tries to take its exclusive lock without waiting.
 * Read-only, so that holding the lock never keeps a file open for writing: the file system can
 * still be remounted read-only under a running server.
 *
 * @param path The lock file.
 * @returns The held lock, or `null` when another open file (another process) holds it.
 * @throws {Error} With a `code` (`ELOOP` for a symlink, `EACCES`, ...) when it cannot be opened.
 */
export type TryLockFile = (path: string) => HeldFileLock | null;
