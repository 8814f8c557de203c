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
 * @module
 */

const F_GETFD = 1;
const F_SETFD = 2;
const F_GETFL = 3;
const F_SETFL = 4;
const FD_CLOEXEC = 1;
const O_NONBLOCK = 0o4000;

type Fcntl = (fd: number, command: number, argument: number) => number;

interface DenoFfi {
  dlopen(
    path: string,
    symbols: { fcntl: { parameters: ["i32", "i32", "i32"]; result: "i32" } },
  ): { symbols: { fcntl: Fcntl }; close(): void };
}

/** Runs `use` with libc's `fcntl` on Deno; false on Bun, or without FFI access. */
function withFcntl(use: (fcntl: Fcntl) => boolean): boolean {
  const deno = (globalThis as unknown as { Deno?: DenoFfi }).Deno;
  if (deno === undefined || "Bun" in globalThis) return false;
  let library: ReturnType<DenoFfi["dlopen"]>;
  try {
    library = deno.dlopen("libc.so.6", {
      fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
    });
  } catch {
    return false; // No FFI access, or no glibc.
  }
  try {
    return use(library.symbols.fcntl);
  } finally {
    library.close();
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
