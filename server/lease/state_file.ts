/**
 * The durable high-water mark: the first number never leased, kept in a small file that is
 * replaced atomically (write a temporary file, fsync it, rename it over the old one, fsync the
 * directory) before any number below the new mark is handed out. After a crash or `kill -9` at
 * any moment the file holds a mark at or above every number any client was given.
 *
 * Two servers on one file would repeat numbers, so the file is locked: a lock file beside it,
 * created exclusively, holds the owner's pid; a lock whose pid is gone (after `kill -9`) is taken
 * over.
 *
 * @module
 */

import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import process from "node:process";
import { MAX_NUMBER } from "../config.ts";
import { assertLeaseFits, type LeaseSource, type LeaseSourceStatus } from "./lease_source.ts";
import { LeaseTally } from "./_lease_tally.ts";
import { DescriptorReserve } from "./descriptor_reserve.ts";

/** The state file cannot be used; the message names the file and the problem. */
export class StateFileError extends Error {
  override name = "StateFileError";
}

const FORMAT = "tallyho-state";
const VERSION = 1;

// A checksum over the mark, so a hand edit or a flipped bit is caught rather than trusted.
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
    const code = (error as { code?: string }).code;
    if (code === "ENOENT") return null;
    throw new StateFileError(
      `Cannot read state file ${path}: ${code ?? (error as Error).message}`,
    );
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

/**
 * Writes a state file durably: temporary file, fsync, rename, fsync of the directory.
 *
 * @param path The file.
 * @param next The mark to record.
 */
export function writeStateFile(path: string, next: number): void {
  const text = JSON.stringify({ format: FORMAT, version: VERSION, next, check: checksum(next) }) +
    "\n";
  const temporary = `${path}.tmp-${process.pid}`;
  const fd = openSync(temporary, "w", 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  const directory = openSync(dirname(path), "r");
  try {
    fsyncSync(directory);
  } finally {
    closeSync(directory);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
  // A killed holder whose parent has not reaped it yet is a zombie: it holds nothing.
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return true; // No /proc: trust kill(pid, 0).
  }
}

/**
 * Takes the lock beside a state file.
 *
 * @param path The state file.
 * @returns A function that releases the lock.
 * @throws {StateFileError} When a live process holds it.
 */
export function lockStateFile(path: string): () => void {
  const lockPath = `${path}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockPath, `${process.pid}\n`, { flag: "wx", mode: 0o600 });
      return () => rmSync(lockPath, { force: true });
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== "EEXIST") {
        throw new StateFileError(`Cannot lock state file ${path}: ${code ?? String(error)}`);
      }
    }
    const holder = Number.parseInt(readFileSync(lockPath, "utf8"), 10);
    if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
      throw new StateFileError(
        `State file ${path} is in use by another tallyho (pid ${holder}, lock ${lockPath})`,
      );
    }
    // The holder died without unlocking (kill -9): its lock is stale.
    rmSync(lockPath, { force: true });
  }
  throw new StateFileError(`Cannot lock state file ${path}: another process keeps taking it`);
}

/** Leases recorded in a state file; each lease costs one durable write. */
export class StateFileLeaseSource implements LeaseSource {
  readonly description: string;
  readonly #path: string;
  readonly #unlock: () => void;
  #next: number;
  #writes = 0;
  readonly #tally = new LeaseTally();
  // The supervisor also serves the admin API: its connections must never leave a lease unable
  // to open the temporary file or the directory (EMFILE stopped every lease once).
  readonly #reserve = new DescriptorReserve();

  private constructor(path: string, next: number, unlock: () => void) {
    this.#path = path;
    this.#next = next;
    this.#unlock = unlock;
    this.description = `state file ${path}`;
  }

  /**
   * Locks and reads the file, creating it when missing.
   *
   * @param path The state file.
   * @param firstNumber Where numbering starts when the file is missing or records less.
   * @returns The source.
   * @throws {StateFileError} When the file is locked, unreadable, corrupt or truncated.
   */
  static open(path: string, firstNumber: number): StateFileLeaseSource {
    const unlock = lockStateFile(path);
    try {
      const recorded = readStateFile(path);
      const next = Math.max(recorded ?? firstNumber, firstNumber);
      if (recorded === null) writeStateFile(path, next);
      return new StateFileLeaseSource(path, next, unlock);
    } catch (error) {
      unlock();
      if (error instanceof StateFileError) throw error;
      throw new StateFileError(`Cannot write state file ${path}: ${(error as Error).message}`);
    }
  }

  lease(count: number): Promise<number> {
    try {
      assertLeaseFits(this.#next, count);
      const first = this.#next;
      // Durable before anyone sees a number from the run.
      this.#reserve.around(() => writeStateFile(this.#path, first + count));
      this.#writes++;
      this.#next = first + count;
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

  close(): Promise<void> {
    this.#reserve.close();
    this.#unlock();
    return Promise.resolve();
  }

  status(): LeaseSourceStatus {
    return this.#tally.status(this.description, true, this.#next);
  }
}
