/**
 * Reads a file that an operator (or anyone holding the admin token) named: a TLS certificate or
 * key, a configuration file. Only a regular file, and only up to a size: `/dev/zero` named as a
 * certificate grew the supervisor to 5.4 GB, and a FIFO blocked it until something wrote to it.
 * The kind is checked before the file is opened (opening some devices does something) and again
 * on the open descriptor (the name may have been replaced in between), the open never waits (a
 * FIFO's open would wait for a writer), and at most `maxBytes + 1` bytes are ever read, whatever
 * the size said.
 *
 * @module
 */

import { closeSync, constants, fstatSync, openSync, readSync, type Stats, statSync } from "node:fs";
import { open, stat } from "node:fs/promises";

/** A named file that is not a regular file, or larger than allowed. */
export class RegularFileError extends Error {
  override name = "RegularFileError";
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

function kind(stat: Stats): string {
  if (stat.isDirectory()) return "a directory";
  if (stat.isFIFO()) return "a FIFO (named pipe)";
  if (stat.isCharacterDevice()) return "a character device";
  if (stat.isBlockDevice()) return "a block device";
  if (stat.isSocket()) return "a socket";
  return "not a regular file";
}

function check(stat: Stats, maxBytes: number): void {
  if (!stat.isFile()) {
    throw new RegularFileError(`it is ${kind(stat)}, not a regular file`);
  }
  if (stat.size > maxBytes) {
    throw new RegularFileError(`it holds ${stat.size} bytes, more than the ${maxBytes} allowed`);
  }
}

function tooLong(maxBytes: number): RegularFileError {
  return new RegularFileError(`it holds more than the ${maxBytes} bytes allowed`);
}

/**
 * Reads a regular file of at most `maxBytes` bytes.
 *
 * @param path The file.
 * @param maxBytes The most bytes it may hold.
 * @returns Its bytes.
 * @throws {RegularFileError} When it is not a regular file or holds more than `maxBytes`.
 * @throws {Error} With the system's `code` when it cannot be opened or read (ENOENT, EACCES).
 */
export function readRegularFile(path: string, maxBytes: number): Uint8Array {
  check(statSync(path), maxBytes);
  const fd = openSync(path, OPEN_FLAGS);
  try {
    check(fstatSync(fd), maxBytes);
    // One byte more than allowed: a file that grew since the stat is caught, not read on.
    const buffer = new Uint8Array(maxBytes + 1);
    let length = 0;
    for (;;) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) return buffer.slice(0, length);
      length += read;
      if (length > maxBytes) throw tooLong(maxBytes);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * {@linkcode readRegularFile} without blocking the event loop: the open and the reads run on the
 * runtime's I/O threads, so even a file on a stalled network mount leaves the loop serving.
 *
 * @param path The file.
 * @param maxBytes The most bytes it may hold.
 * @returns Its bytes.
 * @throws {RegularFileError} When it is not a regular file or holds more than `maxBytes`.
 */
export async function readRegularFileAsync(path: string, maxBytes: number): Promise<Uint8Array> {
  check(await stat(path), maxBytes);
  const handle = await open(path, OPEN_FLAGS);
  try {
    check(await handle.stat(), maxBytes);
    const buffer = new Uint8Array(maxBytes + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) return buffer.slice(0, length);
      length += bytesRead;
      if (length > maxBytes) throw tooLong(maxBytes);
    }
  } finally {
    await handle.close();
  }
}
