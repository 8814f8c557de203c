/**
 * The C library: the names it is found under, and opening it through `bun:ffi` for the Bun
 * adapters that need a system call Bun has no API for (`flock`, an `AF_UNIX` datagram socket);
 * the Deno adapters open it with `Deno.dlopen` themselves. Private to this folder.
 *
 * `bun:ffi` is loaded on first use through `import.meta.require`: a static `import "bun:ffi"`
 * would stop Deno from loading the adapters module at all. The compiled binary carries it too.
 *
 * @module
 */

/** The slice of bun:ffi the adapters use, declared so that shared code never loads bun-types. */
export interface BunFfi {
  dlopen<T>(
    path: string,
    symbols: Record<keyof T, { args: string[]; returns: string }>,
  ): { symbols: T };
  read: { i32(pointer: number, offset?: number): number };
  /** The address of a typed array's bytes, for a `ptr` argument. */
  ptr(view: ArrayBufferView): number;
}

/** The names glibc's C library is found under (tallyho's binaries target glibc on Linux). */
export const LIBC_NAMES = ["libc.so.6", "libc.so"] as const;

/**
 * Opens the C library with `symbols`, and `__errno_location` to read errno with.
 *
 * @param symbols The functions, as bun:ffi declares them.
 * @param purpose What for, in the error: `flock`, `a Unix datagram socket`.
 * @returns The functions, and `errno()`, which reads errno after a call failed.
 * @throws {Error} Naming the purpose, when no name of the library loads.
 */
export function openLibc<T>(
  symbols: Record<keyof T, { args: string[]; returns: string }>,
  purpose: string,
): { libc: T; errno(): number } {
  const ffi = (import.meta as unknown as { require(id: string): BunFfi }).require("bun:ffi");
  let lastError: unknown = null;
  for (const name of LIBC_NAMES) {
    try {
      const libc = ffi.dlopen<T & { __errno_location(): number }>(name, {
        ...symbols,
        __errno_location: { args: [], returns: "ptr" },
      } as Record<keyof (T & { __errno_location(): number }), { args: string[]; returns: string }>)
        .symbols;
      return { libc, errno: () => ffi.read.i32(libc.__errno_location()) };
    } catch (error) {
      lastError = error;
    }
  }
  throw new Error(`Cannot load the C library for ${purpose}: ${(lastError as Error).message}`);
}
