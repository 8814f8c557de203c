/**
 * A self-signed ECDSA P-256 certificate made with `openssl` (fast to make; both runtimes' TLS
 * stacks and nginx read it), for the TLS benchmark and, through tests/_certificates.ts, the
 * tests: one way to make one, since bench/ may not import tests/.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { chmodSync } from "node:fs";
import { join } from "node:path";

/** Options for {@linkcode selfSignedCertificate}. */
export interface SelfSignedOptions {
  /**
   * Days it is valid from now.
   * @default {2}
   */
  days?: number;
  /**
   * The subject's common name.
   * @default {"localhost"}
   */
  commonName?: string;
  /**
   * The names it is valid for (`subjectAltName`), or null for none.
   * @default {"DNS:localhost,IP:127.0.0.1"}
   */
  altNames?: string | null;
}

/**
 * Makes `NAME.crt` and `NAME.key` (mode 0600) in `dir`.
 *
 * @param dir Where the files go.
 * @param name Their name, without the extension.
 * @param options Validity and names.
 * @returns The certificate's and the key's paths.
 * @throws Error with openssl's own words when it fails (or is not installed).
 */
export function selfSignedCertificate(
  dir: string,
  name: string,
  options: SelfSignedOptions = {},
): { cert: string; key: string } {
  const { days = 2, commonName = "localhost", altNames = "DNS:localhost,IP:127.0.0.1" } = options;
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  try {
    execFileSync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      String(days),
      "-subj",
      `/CN=${commonName}`,
      ...(altNames === null ? [] : ["-addext", `subjectAltName=${altNames}`]),
    ], { stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new Error(`openssl could not make a certificate: ${(error as Error).message}\n${stderr}`);
  }
  chmodSync(key, 0o600);
  return { cert, key };
}
