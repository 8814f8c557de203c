/**
 * The durable high-water mark: the first number never leased, kept in a small file that is
 * replaced atomically (write a temporary file, check it, fsync it, rename it over the old one,
 * fsync the directory) before any number below the new mark is handed out. After a crash or
 * `kill -9` at any moment the file holds a mark at or above every number any client was given.
 *
 * Two servers on one file would repeat numbers, so the file is locked with a kernel lock (see
 * `state_lock.ts`), and its directory must be one that no other user can write (see
 * `state_directory.ts`).
 *
 * @module
 */

import {
  closeSync,
  constants,
  fsyncSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import process from "node:process";
import { MAX_NUMBER } from "../../../common/max_number.ts";
import { assertLeaseFits, type LeaseSource, type LeaseSourceStatus } from "../../lease_source.ts";
import { LeaseTally } from "../../_lease_tally.ts";
import { StateFileError } from "./state_file_error.ts";
import { fileErrorReason } from "../../../common/file_error.ts";
import { lockStateFile, type StateLock } from "./state_lock.ts";
import type { TryLockFile } from "../../../adapters/file_lock.ts";
import { DescriptorReserve } from "../../descriptor_reserve.ts";

export { StateFileError } from "./state_file_error.ts";

const FORMAT = "tallyho-state";
const VERSION = 1;

// A checksum over the mark, so a hand edit or a flipped bit is caught rather than trusted. It is
// not keyed: a key would have to live beside the file, where whoever could rewrite the file could
// read it. Against other users the defence is the directory check; against the owner, none is
// possible.
function checksum(next: number): string {
  let hash = 0x811c9dc5;
  for (const char of `${FORMAT}:${VERSION}:${next}`) {
    hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

/**
 * Reads and checks a state file.
 *
 * @param path The file.
 * @returns The recorded mark, or `null` when the file does not exist.
 * @throws {StateFileError} When it cannot be read or is corrupt or truncated.
 */
export function readStateFile(path: string): number | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return null;
    throw new StateFileError(`Cannot read state file ${path}: ${fileErrorReason(error)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new StateFileError(
      `State file ${path} is corrupt or truncated (not complete JSON, ${text.length} bytes); ` +
        `refusing to guess where numbering stopped`,
    );
  }
  const record = parsed as { format?: unknown; version?: unknown; next?: unknown; check?: unknown };
  if (record?.format !== FORMAT || record.version !== VERSION) {
    throw new StateFileError(`State file ${path} is not a ${FORMAT} v${VERSION} file`);
  }
  const next = record.next;
  if (
    typeof next !== "number" || !Number.isSafeInteger(next) || next < 1 || next > MAX_NUMBER + 1
  ) {
    throw new StateFileError(`State file ${path} is corrupt: 'next' is ${JSON.stringify(next)}`);
  }
  if (record.check !== checksum(next)) {
    throw new StateFileError(`State file ${path} is corrupt: its checksum does not match`);
  }
  return next;
}

/** Writes `length` bytes of `bytes` from `offset` at file position `position`; returns how many. */
export type WriteChunk = (
  fd: number,
  bytes: Uint8Array,
  offset: number,
  length: number,
  position: number,
) => number;

/** Options of {@linkcode writeStateFile}. */
export interface WriteStateOptions {
  /**
   * How bytes reach the temporary file; a test passes one that fails or writes short.
   *
   * @default {writeSync}
   */
  writeChunk?: WriteChunk;
}

function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// O_CREAT | O_EXCL never opens an existing file nor follows a symlink at the path, whoever
// planted it; O_NOFOLLOW says so twice. The name is random, so it cannot be planted in advance.
const TEMPORARY_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL |
  constants.O_NOFOLLOW;

/**
 * Writes a state file durably: a temporary file with a random name (created exclusively, mode
 * 0600) written in full and read back, fsync, rename, fsync of the directory. The old file stays
 * untouched unless every step before the rename succeeded.
 *
 * @param path The file.
 * @param next The mark to record.
 * @param options See {@linkcode WriteStateOptions}.
 * @throws {StateFileError} When any step fails; the message says how far the write got.
 */
export function writeStateFile(path: string, next: number, options: WriteStateOptions = {}): void {
  const write = options.writeChunk ?? writeSync;
  const text = JSON.stringify({ format: FORMAT, version: VERSION, next, check: checksum(next) }) +
    "\n";
  const bytes = new TextEncoder().encode(text);
  const temporary = `${path}.tmp-${randomSuffix()}`;
  let step = "create the temporary file";
  let renamed = false;
  try {
    const fd = openSync(temporary, TEMPORARY_FLAGS, 0o600);
    try {
      step = `write ${bytes.length} bytes`;
      for (let done = 0; done < bytes.length;) {
        const wrote = write(fd, bytes, done, bytes.length - done, done);
        if (!(wrote > 0)) throw new Error(`the write stopped after ${done} bytes`);
        done += wrote;
        step = `write ${bytes.length} bytes (${done} written)`;
      }
      step = "read back what was written";
      const back = new Uint8Array(bytes.length + 1);
      const read = readSync(fd, back, 0, back.length, 0);
      if (!sameBytes(back.subarray(0, read), bytes)) {
        throw new Error(`read back ${read} bytes that differ from the ${bytes.length} written`);
      }
      step = "fsync the temporary file";
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    step = "rename the temporary file over the state file";
    renameSync(temporary, path);
    renamed = true;
    step = "fsync the directory";
    const directory = openSync(dirname(path), "r");
    try {
      fsyncSync(directory);
    } finally {
      closeSync(directory);
    }
  } catch (error) {
    if (!renamed) {
      try {
        rmSync(temporary, { force: true });
      } catch {
        // The directory refuses changes; the random name harms nothing.
      }
    }
    throw new StateFileError(
      `Cannot record ${next} in state file ${path}: could not ${step}: ` +
        fileErrorReason(error) +
        (renamed ? "" : "; the file still holds the previous mark"),
    );
  }
}

let fileSizeSignalIgnored = false;

// A write past the file size limit (`ulimit -f`) raises SIGXFSZ, whose default action kills the
// process: Deno 2.9.6 keeps it, so the supervisor would die mid-write instead of failing one
// lease (Bun 1.4.5 ignores it). With a listener the write fails with EFBIG, like any other.
function ignoreFileSizeSignal(): void {
  if (fileSizeSignalIgnored) return;
  fileSizeSignalIgnored = true;
  try {
    process.on("SIGXFSZ", () => {});
  } catch {
    // A platform without the signal has no such limit either.
  }
}

/** Leases recorded in a state file; each lease costs one durable write. */
export class StateFileLeaseSource implements LeaseSource {
  readonly description: string;
  readonly #path: string;
  readonly #lock: StateLock;
  #next: number;
  #writes = 0;
  #closed = false;
  readonly #tally = new LeaseTally();
  // The supervisor also serves the admin API: its connections must never leave a lease unable
  // to open the temporary file or the directory (EMFILE stopped every lease once).
  readonly #reserve = new DescriptorReserve();

  private constructor(path: string, next: number, lock: StateLock, durable: number) {
    this.#path = path;
    this.#next = next;
    this.#lock = lock;
    this.description = `state file ${path}`;
    this.#tally.durable(durable, false);
  }

  /**
   * Locks and reads the file, creating it when missing.
   *
   * @param path The state file.
   * @param firstNumber Where numbering starts when the file is missing or records less.
   * @param runtime The runtime's file lock (the runtime adapter's `tryLockFile`).
   * @returns The source.
   * @throws {StateFileError} When the file is locked, unreadable, corrupt or truncated, or its
   *   directory can be written by other users.
   */
  static open(
    path: string,
    firstNumber: number,
    runtime: { tryLockFile: TryLockFile },
  ): StateFileLeaseSource {
    ignoreFileSizeSignal();
    const lock = lockStateFile(path, runtime.tryLockFile);
    try {
      const recorded = readStateFile(path);
      const next = Math.max(recorded ?? firstNumber, firstNumber);
      if (recorded === null) writeStateFile(path, next);
      return new StateFileLeaseSource(path, next, lock, recorded ?? next);
    } catch (error) {
      try {
        lock.release();
      } catch {
        // The error that stopped the start is the one to report.
      }
      if (error instanceof StateFileError) throw error;
      throw new StateFileError(`Cannot write state file ${path}: ${(error as Error).message}`);
    }
  }

  lease(count: number): Promise<number> {
    try {
      // Closed means the lock is let go: another server (an upgrade's new tree) may own the file
      // now, and a write from here would set its mark back below numbers it has handed out.
      if (this.#closed) {
        throw new StateFileError(
          `State file ${this.#path} was closed (its lock released); no more numbers are ` +
            `handed out from it by this server`,
        );
      }
      assertLeaseFits(this.#next, count);
      const first = this.#next;
      // Durable before anyone sees a number from the run.
      this.#reserve.around(() => writeStateFile(this.#path, first + count));
      this.#writes++;
      this.#next = first + count;
      this.#tally.durable(this.#next, true);
      // Checked after the write: if the lock file is still ours now, any server that takes the
      // lock later reads the new mark; if it was deleted (by hand), another server may already
      // be serving from this file, so no number of this run may be handed out.
      if (!this.#lock.isNamed()) {
        throw new StateFileError(
          `Lock file ${this.#lock.path} was removed or replaced while this server held it; ` +
            `another tallyho may be using state file ${this.#path}, so no more numbers are ` +
            `handed out from it (restart this server)`,
        );
      }
      this.#tally.granted(first, count);
      return Promise.resolve(first);
    } catch (error) {
      this.#tally.failed(error as Error);
      return Promise.reject(error);
    }
  }

  get next(): number {
    return this.#next;
  }

  /** Durable writes made so far (one per lease). */
  get writes(): number {
    return this.#writes;
  }

  /**
   * Releases the lock. Every mark was recorded at its lease, so nothing else is written.
   *
   * @throws {StateFileError} When the lock file could not be removed (the lock is released).
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#reserve.close();
    try {
      this.#lock.release();
    } catch (error) {
      this.#tally.noteError((error as Error).message);
      return Promise.reject(error);
    }
    return Promise.resolve();
  }

  status(): LeaseSourceStatus {
    return this.#tally.status(this.description, true, this.#next);
  }
}
