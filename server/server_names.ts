/**
 * Which server names (SNI) a certificate answers for, so a client that asks for another name is
 * closed rather than served a certificate it was not asking for. The names are the certificate's
 * own: its DNS subject alternative names, or its CN when it has none; a wildcard covers one
 * label (`*.example.com` covers `a.example.com`, not `b.a.example.com`), as clients check it
 * (RFC 6125). A client that sends no name (one that connects by IP address, where RFC 6066
 * forbids sending it) is always served.
 *
 * @module
 */

import { nodeCrypto } from "./common/lazy_builtins.ts";

/** Whether a server name a client asked for is one the certificate covers. */
export type ServerNameCheck = (name: string) => boolean;

const ANY_NAME: ServerNameCheck = () => true;

/**
 * The names a certificate answers for.
 *
 * @param certPem The certificate chain, PEM; its first certificate is the server's.
 * @returns Lower-case names, wildcards kept as `*.example.com`; empty when it names no host.
 */
export function certificateNames(certPem: string): string[] {
  const certificate = new (nodeCrypto().X509Certificate)(certPem);
  const names: string[] = [];
  for (const entry of (certificate.subjectAltName ?? "").split(", ")) {
    if (entry.startsWith("DNS:")) names.push(entry.slice(4).toLowerCase());
  }
  if (names.length > 0) return names;
  // No DNS names: the CN, when it looks like a host name (not "My Server").
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(certificate.subject)?.[1]?.toLowerCase();
  return cn !== undefined && /^[a-z0-9*.-]+$/.test(cn) ? [cn] : [];
}

/**
 * Makes the check a listener runs once per handshake: a set lookup, no allocation beyond
 * lower-casing the name.
 *
 * @param certPem The certificate chain, PEM.
 * @returns The check; one that accepts every name when the certificate names no host.
 *
 * @example
 * ```ts
 * const accepts = serverNameCheck(pem); // a certificate for DNS:*.example.com
 * accepts("a.example.com"); // true
 * accepts("example.org"); // false
 * ```
 */
export function serverNameCheck(certPem: string): ServerNameCheck {
  const names = certificateNames(certPem);
  if (names.length === 0) return ANY_NAME;
  const exact = new Set(names.filter((name) => !name.startsWith("*.")));
  // "*.example.com" is kept as ".example.com", the part after a name's first label.
  const wildcards = new Set(names.filter((name) => name.startsWith("*.")).map((n) => n.slice(1)));
  return (name) => {
    let lower = name.toLowerCase();
    if (lower.endsWith(".")) lower = lower.slice(0, -1);
    if (exact.has(lower)) return true;
    const dot = lower.indexOf(".");
    return dot > 0 && wildcards.has(lower.slice(dot));
  };
}
