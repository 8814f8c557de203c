/**
 * Options the Redis and etcd lease sources read alike: the first number, and the PEM file of the
 * certificate authority a TLS URL trusts.
 *
 * @module
 */

import { fileErrorReason } from "../common/file_error.ts";
import { readFileSync } from "node:fs";
import { MAX_NUMBER } from "../common/max_number.ts";

/**
 * The first number to hand out, checked.
 *
 * @param value What the options said.
 * @returns It, or 1 when not given.
 * @throws {RangeError} When it is not an integer from 1 to 2^53 - 1.
 */
export function firstNumberOption(value: number | undefined): number {
  const firstNumber = value ?? 1;
  if (!Number.isSafeInteger(firstNumber) || firstNumber < 1) {
    throw new RangeError(
      `'firstNumber' must be an integer from 1 to ${MAX_NUMBER}: got ${firstNumber}`,
    );
  }
  return firstNumber;
}

/**
 * Reads the CA file a TLS number source trusts.
 *
 * @param file The file, or `null`/`undefined` for none.
 * @param service Whose CA it is, for the message ("Redis", "etcd").
 * @param Failure The source's error class.
 * @returns The PEM text, or `null` when no file was given.
 * @throws {Error} A `Failure` naming the file and why it cannot be read.
 */
export function readCaFile(
  file: string | null | undefined,
  service: string,
  Failure: new (message: string) => Error,
): string | null {
  if (file == null) return null;
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new Failure(`Cannot read the ${service} CA file ${file}: ${fileErrorReason(error)}`);
  }
}
