/**
 * Two descriptor flags that neither runtime can set, for the admin API's listening socket as an
 * upgrade passes it on (see capped_http.ts):
 *
 * - {@linkcode closeOnExec}: a descriptor passed down arrives without `FD_CLOEXEC`, and Deno
 *   2.9.6's spawn gives a child every open descriptor without it: the serving processes would
 *   hold the listening socket without ever accepting on it, and after a failed upgrade the port
 *   could not be bound again.
 * - {@linkcode setNonBlocking}: Deno 2.9.6's node:child_process spawn clears `O_NONBLOCK` on a
 *   socket it passes to a child (on the open socket, which both processes share), in the parent,
 *   before `spawn()` returns; an accept on the blocking socket once the other process has emptied
 *   its queue would hang the parent. Set again in the same turn, it stays set.
 *
 * Bun 1.4.5's spawn passes only the stdio it is given and leaves the flags alone, so there both do
 * nothing. Deno has no call for either, so `fcntl` is called through its FFI (granted by
 * `--allow-all` in the tasks, the tests and `deno compile`); without FFI access they return false
 * and the caller falls back.
 *
 * And two calls on a descriptor as such, which neither runtime has for a socket it did not open:
 *
 * - {@linkcode duplicate}: the old tree of an upgrade keeps a copy of the admin listening socket
 *   while the new tree takes over, so that the port is never free if the new tree dies (on both
 *   runtimes, through `bun:ffi` on Bun).
 * - {@linkcode closeDescriptor}: Deno 2.9.6's `node:fs` `closeSync` fails with `EBADF` on a
 *   descriptor it did not open itself (such as one an upgrade passed down) and leaves it open.
 *
 * @module
 */

import { closeSync } from "node:fs";
import { openLibc } from "./_libc.ts";

const F_GETFD = 1;
const F_SETFD = 2;
const F_GETFL = 3;
const F_SETFL = 4;
const F_DUPFD_CLOEXEC = 1030;
const FD_CLOEXEC = 1;
const O_NONBLOCK = 0o4000;

type Fcntl = (fd: number, command: number, argument: number) => number;
type Close = (fd: number) => number;

interface DenoFfi {
  dlopen(
    path: string,
    symbols: {
      fcntl: { parameters: ["i32", "i32", "i32"]; result: "i32" };
      close: { parameters: ["i32"]; result: "i32" };
    },
  ): { symbols: { fcntl: Fcntl; close: Close }; close(): void };
}

/** Runs `use` with libc's `fcntl` and `close` on Deno; false on Bun, or without FFI access. */
function withFcntl(use: (fcntl: Fcntl, close: Close) => boolean): boolean {
  const deno = (globalThis as unknown as { Deno?: DenoFfi }).Deno;
  if (deno === undefined || "Bun" in globalThis) return false;
  let library: ReturnType<DenoFfi["dlopen"]>;
  try {
    library = deno.dlopen("libc.so.6", {
      fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
      close: { parameters: ["i32"], result: "i32" },
    });
  } catch {
    return false; // No FFI access, or no glibc.
  }
  try {
    return use(library.symbols.fcntl, library.symbols.close);
  } finally {
    library.close();
  }
}

/** libc's `fcntl` on Bun (bun:ffi), or null elsewhere or when it cannot be loaded. */
function bunFcntl(): Fcntl | null {
  if (!("Bun" in globalThis)) return null;
  try {
    return openLibc<{ fcntl: Fcntl }>(
      { fcntl: { args: ["i32", "i32", "i32"], returns: "i32" } },
      "fcntl",
    ).libc.fcntl;
  } catch {
    return null;
  }
}

/** Sets `flag` in the flags `get` reads and `set` writes. */
function addFlag(fcntl: Fcntl, fd: number, get: number, set: number, flag: number): boolean {
  const flags = fcntl(fd, get, 0);
  return flags >= 0 && fcntl(fd, set, flags | flag) === 0;
}

/**
 * Sets `FD_CLOEXEC` on `fd` (Deno, Linux).
 *
 * @param fd The descriptor.
 * @returns Whether it is set now; false on Bun (nothing to do) and without FFI access.
 */
export function closeOnExec(fd: number): boolean {
  return withFcntl((fcntl) => addFlag(fcntl, fd, F_GETFD, F_SETFD, FD_CLOEXEC));
}

/**
 * Sets `O_NONBLOCK` on `fd` (Deno, Linux).
 *
 * @param fd The descriptor.
 * @returns Whether it is set now; false on Bun (nothing to do) and without FFI access.
 */
export function setNonBlocking(fd: number): boolean {
  return withFcntl((fcntl) => addFlag(fcntl, fd, F_GETFL, F_SETFL, O_NONBLOCK));
}

/**
 * Makes a copy of `fd` (`FD_CLOEXEC` set, so no child inherits it): the socket stays open while
 * the copy is, whatever happens to `fd`.
 *
 * @param fd The descriptor.
 * @returns The copy, or null without FFI access.
 */
export function duplicate(fd: number): number | null {
  let copy = -1;
  const fcntl = bunFcntl();
  if (fcntl !== null) copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  else withFcntl((denoFcntl) => (copy = denoFcntl(fd, F_DUPFD_CLOEXEC, 3)) >= 0);
  return copy >= 0 ? copy : null;
}

/**
 * Closes `fd`, which this process may not have opened through its runtime; nothing when it is not
 * open.
 *
 * @param fd The descriptor.
 */
export function closeDescriptor(fd: number): void {
  if (withFcntl((_, close) => close(fd) === 0 || true)) return;
  try {
    closeSync(fd);
  } catch {
    // Not open.
  }
}
