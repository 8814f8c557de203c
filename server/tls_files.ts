/**
 * The listener's certificate and key, read and checked before anything listens: both PEM, the key
 * the certificate's own, and the key file closed to other users (warned, like the admin token's,
 * since container secrets are often mounted readable by all).
 *
 * @module
 */

import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { ConfigError } from "./config_error.ts";

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
 * @returns Their contents, the expiry and any warnings.
 * @throws {ConfigError} When a file cannot be read, is not PEM, or the key is not the
 *   certificate's; the message names the file.
 */
export function readTlsFiles(
  certPath: string,
  keyPath: string,
  names: TlsFileNames = {},
): TlsFiles {
  const certFlag = names.certFlag ?? "tls-cert";
  const keyFlag = names.keyFlag ?? "tls-key";
  const cert = readText(certFlag, certPath);
  const key = readText(keyFlag, keyPath);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
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
    matches = certificate.checkPrivateKey(createPrivateKey(key));
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

function readText(flag: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as { code?: string }).code ?? (error as Error).message;
    throw new ConfigError(flag, `Cannot read '${flag}' file ${path}: ${code}`);
  }
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
    const certificate = new X509Certificate(readFileSync(certPath, "utf8"));
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
 * @returns A SHA-256 of both files' bytes; "" when TLS is off or a file cannot be read (the
 *   next check reads it again and reports why).
 */
export function tlsFilesDigest(certPath: string | null, keyPath: string | null): string {
  if (certPath === null || keyPath === null) return "";
  try {
    return createHash("sha256").update(readFileSync(certPath)).update("\0")
      .update(readFileSync(keyPath)).digest("hex");
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
