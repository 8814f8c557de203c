/**
 * The listener's certificate and key, read and checked before anything listens: both PEM, the key
 * the certificate's own, and the key file closed to other users (warned, like the admin token's,
 * since container secrets are often mounted readable by all).
 *
 * Each is read as a regular file of at most {@linkcode TLS_FILE_MAX_BYTES} (server/host/regular_file.ts):
 * a path changed through the admin API, `--config` or SIGHUP may name a device or a FIFO, which is
 * refused before anything is read from it. A change made while the server runs reads the files
 * off the event loop first ({@linkcode readTlsFileContents}) and plans with what it read.
 *
 * @module
 */

import { fileErrorReason } from "../common/file_error.ts";
import type { X509Certificate } from "node:crypto";
import { nodeCrypto } from "../common/lazy_builtins.ts";
import { statSync } from "node:fs";
import { ConfigError } from "../common/config_error.ts";
import { readRegularFile, readRegularFileAsync, RegularFileError } from "../host/regular_file.ts";

/**
 * The most bytes a certificate chain or key file may hold: a chain of a few certificates is a few
 * kilobytes.
 */
export const TLS_FILE_MAX_BYTES = 1024 * 1024;

/**
 * TLS files read ahead of a plan, by path: their bytes, or why they could not be read. A path not
 * in it is read when needed.
 */
export type TlsFileContents = ReadonlyMap<string, Uint8Array | Error>;

/**
 * Reads files off the event loop, for a plan to use (see {@linkcode TlsFileContents}).
 *
 * @param paths The files; nulls and repeats are skipped.
 * @returns What each held, or the error reading it.
 */
export async function readTlsFileContents(
  paths: readonly (string | null | undefined)[],
): Promise<TlsFileContents> {
  const unique = [...new Set(paths.filter((path): path is string => typeof path === "string"))];
  const read = await Promise.all(
    unique.map((path) =>
      readRegularFileAsync(path, TLS_FILE_MAX_BYTES).catch((error: Error) => error)
    ),
  );
  return new Map(unique.map((path, i) => [path, read[i]!]));
}

/** A file's bytes, from `files` when it was read ahead, else read now (bounded). */
function bytesOf(path: string, files: TlsFileContents | undefined): Uint8Array {
  const ahead = files?.get(path);
  if (ahead instanceof Error) throw ahead;
  return ahead ?? readRegularFile(path, TLS_FILE_MAX_BYTES);
}

/** A certificate and key ready to listen with. */
export interface TlsFiles {
  /** The certificate chain, PEM. */
  cert: string;
  /** The private key, PEM. */
  key: string;
  /** When the (first) certificate expires, in ms since the epoch. */
  notAfter: number;
  /** The certificate's subject, as `CN=...`. */
  subject: string;
  /** What the operator should fix but that does not stop the server (a key readable by others). */
  warnings: string[];
}

/** Whose files {@linkcode readTlsFiles} reads, for its messages. */
export interface TlsFileNames {
  /**
   * The certificate's flag.
   * @default {"tls-cert"}
   */
  certFlag?: string;
  /**
   * The key's flag.
   * @default {"tls-key"}
   */
  keyFlag?: string;
  /**
   * What the key is, in a warning ("the TLS key file ...").
   * @default {"TLS key"}
   */
  keyName?: string;
}

/**
 * Reads and checks a certificate and its key: the listener's, or the client certificate an
 * `etcds://` number source presents.
 *
 * @param certPath The certificate chain's PEM file.
 * @param keyPath The private key's PEM file.
 * @param names The flags and words the messages use (the listener's by default).
 * @param files What was read ahead of this call, off the event loop; other files are read now.
 * @returns Their contents, the expiry and any warnings.
 * @throws {ConfigError} When a file cannot be read, is not a regular file of at most
 *   {@linkcode TLS_FILE_MAX_BYTES}, is not PEM, or the key is not the certificate's; the message
 *   names the file.
 */
export function readTlsFiles(
  certPath: string,
  keyPath: string,
  names: TlsFileNames = {},
  files?: TlsFileContents,
): TlsFiles {
  const certFlag = names.certFlag ?? "tls-cert";
  const keyFlag = names.keyFlag ?? "tls-key";
  const cert = readText(certFlag, certPath, files);
  const key = readText(keyFlag, keyPath, files);
  let certificate: X509Certificate;
  try {
    certificate = new (nodeCrypto().X509Certificate)(cert);
  } catch (error) {
    throw new ConfigError(
      certFlag,
      `'${certFlag}' ${certPath} is not a PEM certificate (${
        (error as Error).message
      }): give the ` +
        `file that starts with -----BEGIN CERTIFICATE-----`,
    );
  }
  let matches: boolean;
  try {
    matches = certificate.checkPrivateKey(nodeCrypto().createPrivateKey(key));
  } catch (error) {
    throw new ConfigError(
      keyFlag,
      `'${keyFlag}' ${keyPath} is not a PEM private key (${(error as Error).message}): give the ` +
        `file that starts with -----BEGIN PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----`,
    );
  }
  if (!matches) {
    throw new ConfigError(
      keyFlag,
      `'${keyFlag}' ${keyPath} is not the key of the certificate in ${certPath} (${certificate.subject}): ` +
        `give the key the certificate was made for`,
    );
  }
  const warnings: string[] = [];
  const mode = statSync(keyPath).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    warnings.push(
      `the ${
        names.keyName ?? "TLS key"
      } file '${keyPath}' can be read or written by other users (mode 0${
        mode.toString(8)
      }): run chmod 600 '${keyPath}'`,
    );
  }
  return {
    cert,
    key,
    notAfter: Date.parse(certificate.validTo),
    subject: certificate.subject,
    warnings,
  };
}

const decoder = new TextDecoder();

function readText(flag: string, path: string, files?: TlsFileContents): string {
  try {
    return decoder.decode(bytesOf(path, files));
  } catch (error) {
    if (error instanceof RegularFileError) {
      throw new ConfigError(
        flag,
        `Cannot use ${JSON.stringify(path)} as '${flag}': ${error.message}; give the PEM file`,
      );
    }
    throw new ConfigError(flag, `Cannot read '${flag}' file ${path}: ${fileErrorReason(error)}`);
  }
}

/**
 * The PEM text of a certificate and key, read as {@linkcode readTlsFiles} reads them (regular
 * files of at most {@linkcode TLS_FILE_MAX_BYTES}) but not checked again: for each serving
 * thread, once the supervisor has checked the pair.
 *
 * @param certPath The certificate chain's PEM file.
 * @param keyPath The private key's PEM file.
 * @returns Both texts.
 * @throws {ConfigError} When a file can no longer be read as it was checked.
 */
export function readTlsPair(certPath: string, keyPath: string): { cert: string; key: string } {
  return { cert: readText("tls-cert", certPath), key: readText("tls-key", keyPath) };
}

/** What `/v1/info` and the metrics show of the certificate in force. */
export interface CertificateInfo {
  /** The certificate's file. */
  file: string;
  /** Its subject, as `CN=...`. */
  subject: string;
  /** When it expires, ISO 8601. */
  notAfter: string;
  /** The same in seconds since the epoch (the metrics' gauge). */
  notAfterSeconds: number;
}

/**
 * Reads the certificate in force for the admin API, as it is on disk now.
 *
 * @param certPath The certificate chain's PEM file.
 * @returns Its subject and expiry, or null when it can no longer be read or parsed.
 */
export function readCertificateInfo(certPath: string): CertificateInfo | null {
  try {
    const certificate = new (nodeCrypto().X509Certificate)(bytesOf(certPath, undefined));
    const notAfter = Date.parse(certificate.validTo);
    return {
      file: certPath,
      subject: certificate.subject,
      notAfter: new Date(notAfter).toISOString(),
      notAfterSeconds: notAfter / 1000,
    };
  } catch {
    return null;
  }
}

/**
 * What the TLS files hold now, as one digest: a change of it with the same paths is a renewal
 * in place (certbot rewrites `live/NAME/fullchain.pem`), which a reload must pick up.
 *
 * @param certPath The certificate chain's PEM file, or null when TLS is off.
 * @param keyPath The private key's PEM file.
 * @param files What was read ahead of this call, off the event loop; other files are read now.
 * @returns A SHA-256 of both files' bytes; "" when TLS is off or a file cannot be read (the
 *   next check reads it again and reports why).
 */
export function tlsFilesDigest(
  certPath: string | null,
  keyPath: string | null,
  files?: TlsFileContents,
): string {
  if (certPath === null || keyPath === null) return "";
  try {
    return nodeCrypto().createHash("sha256").update(bytesOf(certPath, files)).update("\0")
      .update(bytesOf(keyPath, files)).digest("hex");
  } catch {
    return "";
  }
}

/**
 * How a log line and a change name the certificate of a pair.
 *
 * @param files The pair, as {@linkcode readTlsFiles} returns it.
 * @returns `CN=a, valid until 2027-01-01T00:00:00.000Z`.
 */
export function describeTlsFiles(files: Pick<TlsFiles, "subject" | "notAfter">): string {
  return `${files.subject}, valid until ${new Date(files.notAfter).toISOString()}`;
}
