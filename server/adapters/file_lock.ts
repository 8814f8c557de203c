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
  /**
   * Replaces the file's content (the holder's pid, for people; the lock never reads it).
   *
   * @param text What the file holds afterwards.
   */
  write(text: string): void;
  /** Closes the file, which releases the lock. Safe to call more than once. */
  close(): void;
}

/**
 * Opens `path` (creating it with mode 0600, never through a symlink, closed on exec so that
 * spawned processes do not inherit it) and tries to take its exclusive lock without waiting.
 *
 * @param path The lock file.
 * @returns The held lock, or `null` when another open file (another process) holds it.
 * @throws {Error} With a `code` (`ELOOP` for a symlink, `EACCES`, ...) when it cannot be opened.
 */
export type TryLockFile = (path: string) => HeldFileLock | null;
