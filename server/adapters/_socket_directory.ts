/**
 * The private directory of the capped admin server's inner socket: made in TMPDIR, which must be a
 * directory no other user can change (server/host/private_directory.ts), and held by a descriptor, so
 * that the socket is bound and reached through `/proc/self/fd/N/http.sock` and renaming the
 * directory changes nothing. A supervisor killed before it removed its directory leaves it
 * behind; {@linkcode removeLeftovers} removes those on the next start.
 *
 * @module
 */

import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
} from "node:fs";
import { nodeNet } from "../common/lazy_builtins.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { assertSafeDirectory, UnsafeDirectoryError } from "../host/private_directory.ts";

/** The first part of the name of the inner socket's directory in TMPDIR. */
export const ADMIN_DIRECTORY_PREFIX = "tallyho-admin-";

/** Whether a process runs (or runs under another user: it exists). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

/** Whether nothing listens on the Unix socket at `path` (refused, or no socket there). */
function nobodyListens(path: string, missingCounts: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = nodeNet().connect({ path });
    const timer = setTimeout(() => finish(false), 1000);
    function finish(result: boolean): void {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    }
    socket.once("connect", () => finish(false));
    socket.once(
      "error",
      (error: Error & { code?: string }) =>
        finish(error.code === "ECONNREFUSED" || (missingCounts && error.code === "ENOENT")),
    );
  });
}

/**
 * Removes the inner-socket directories that supervisors killed before their stop (`kill -9`, a
 * crash) left in `directory`: this user's, whose supervisor is gone and whose socket nobody
 * listens on. A directory named without a pid (made by a version before 2026-12) goes only when
 * its socket is there and refuses: without one it may belong to a server still starting.
 */
export async function removeLeftovers(directory: string, own: string): Promise<void> {
  const uid = process.getuid?.();
  let names: string[];
  try {
    names = readdirSync(directory);
  } catch {
    return;
  }
  const checks: Promise<void>[] = [];
  for (const name of names) {
    if (!name.startsWith(ADMIN_DIRECTORY_PREFIX) || join(directory, name) === own) continue;
    const path = join(directory, name);
    try {
      const stat = lstatSync(path);
      if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid)) continue;
    } catch {
      continue;
    }
    const pid = /^tallyho-admin-(\d+)-/.exec(name)?.[1];
    if (pid !== undefined && processExists(Number(pid))) continue;
    checks.push(
      nobodyListens(join(path, "http.sock"), pid !== undefined).then((gone) => {
        if (gone) rmSync(path, { recursive: true, force: true });
      }),
    );
    if (checks.length >= 256) break; // The rest on a later start.
  }
  await Promise.all(checks);
}

/**
 * Makes the inner socket's private directory in TMPDIR and opens it: the socket is bound and
 * reached through the descriptor, so renaming the directory later changes nothing.
 */
export function privateSocketDirectory(): { directory: string; fd: number; socketPath: string } {
  const base = tmpdir();
  assertSafeDirectory(base, "TMPDIR", {
    advice: "set TMPDIR to a directory that only this user (or root) can write, or start " +
      "with --admin off",
  });
  let directory: string;
  try {
    // mkdtemp makes the directory 0700: only this user can reach the inner server, so nobody can
    // go around the cap by connecting to it directly.
    directory = mkdtempSync(join(base, `${ADMIN_DIRECTORY_PREFIX}${process.pid}-`));
  } catch (error) {
    throw new UnsafeDirectoryError(
      "TMPDIR",
      `Cannot start the admin API: cannot make its private socket directory in ${base}: ${
        (error as { code?: string }).code ?? (error as Error).message
      }. Set TMPDIR to a writable directory, or start with --admin off`,
    );
  }
  const fd = openSync(directory, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  const stat = fstatSync(fd);
  const uid = process.getuid?.();
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o077) !== 0) {
    closeSync(fd);
    throw new UnsafeDirectoryError(
      "TMPDIR",
      `Cannot start the admin API: its socket directory ${directory} was replaced as it was ` +
        `made; set TMPDIR to a directory that only this user can write`,
    );
  }
  // Through the descriptor where /proc is there (Linux), by the path otherwise.
  let socketDirectory = `/proc/self/fd/${fd}`;
  try {
    if (!lstatSync(socketDirectory).isSymbolicLink()) socketDirectory = directory;
  } catch {
    socketDirectory = directory;
  }
  return { directory, fd, socketPath: join(socketDirectory, "http.sock") };
}
