/**
 * The doctor's certificate item: how long the listener's certificate has left. Pure: it judges
 * a certificate already read against a time of day it is given, so tests pass any.
 *
 * @module
 */

import type { CertificateInfo } from "../tls/tls_files.ts";
import type { DoctorItem } from "./checks.ts";

/** Days left under which the certificate is reported risky: time for a renewal to be noticed. */
export const CERTIFICATE_WARN_DAYS = 14;

const DAY_MS = 86_400_000;

/**
 * Judges the listener's certificate: bad once expired (clients refuse the handshake), risky
 * within {@linkcode CERTIFICATE_WARN_DAYS} days of it, ok otherwise.
 *
 * @param path The certificate file, as given on the command line.
 * @param info What it holds, or null when it could not be read as a PEM certificate.
 * @param now The time of day to judge at, in ms since the epoch.
 * @returns The item, named `tls certificate`.
 */
export function checkCertificate(
  path: string,
  info: CertificateInfo | null,
  now: number,
): DoctorItem {
  const name = "tls certificate";
  if (info === null) {
    return {
      name,
      value: null,
      verdict: "bad",
      why: `${path} cannot be read as a PEM certificate, so the server would not start with it.`,
      fix: `give --tls-cert the file that starts with -----BEGIN CERTIFICATE-----`,
    };
  }
  const days = Math.floor((info.notAfterSeconds * 1000 - now) / DAY_MS);
  const value = `${info.subject} in ${path}, valid until ${info.notAfter}`;
  const renew = `renew it (certbot renew, or your CA's tool), then reload: kill -HUP <pid>`;
  if (info.notAfterSeconds * 1000 <= now) {
    return {
      name,
      value,
      verdict: "bad",
      why: `It has expired: every client that checks certificates refuses the handshake.`,
      fix: renew,
    };
  }
  if (days < CERTIFICATE_WARN_DAYS) {
    return {
      name,
      value,
      verdict: "risky",
      why: `It expires in ${days} day${days === 1 ? "" : "s"} (under ${CERTIFICATE_WARN_DAYS}): ` +
        `a renewal that fails now leaves clients refusing the handshake.`,
      fix: renew,
    };
  }
  return {
    name,
    value,
    verdict: "ok",
    why: `It has ${days} days left; a reload (SIGHUP) takes up a renewal made under the same ` +
      `file names.`,
    fix: null,
  };
}
