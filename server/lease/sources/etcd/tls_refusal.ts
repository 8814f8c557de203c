/**
 * Says why a TLS connection to a number source's member failed, when `fetch` will not.
 *
 * A member that asks for a client certificate (etcd's `--client-cert-auth`) and gets none, or one
 * signed by a CA it does not trust, answers the TLS 1.3 handshake and then sends an alert; `fetch`
 * reports only that the request failed (Bun 1.4.5: `EPROTO: The TLS handshake failed`; Deno
 * 2.9.6: `fetch failed`, caused by `stream closed because of a broken pipe`), the same words as
 * for a member that does not speak TLS at all. `node:tls` on both runtimes surfaces the alert
 * itself (`ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE`), and its own check of the member's certificate,
 * so after a failed request one handshake with the same settings tells the operator which side
 * to fix.
 *
 * @module
 */

import { connect } from "node:tls";
import { isIP } from "node:net";

/** The TLS settings the failed request used. */
export interface TlsProbeSettings {
  /** The CA to trust, PEM, or `null` for the runtime's usual ones. */
  ca: string | null;
  /** The client certificate presented, PEM, or `null` for none. */
  cert: string | null;
  /** Its key, PEM, or `null`. */
  key: string | null;
  /** The client certificate's file, for messages; `null` when none is given. */
  certFile: string | null;
}

/**
 * One handshake with `host:port` and a request, to learn what refused what.
 *
 * @param host The member's host.
 * @param port Its port.
 * @param settings What the failed request presented and trusted.
 * @param timeoutMs How long the probe may take.
 * @returns A sentence that says what was refused and what to do, or `null` when the handshake
 *   and a request went through (or nothing clear came back): the failure was something else.
 */
export function explainTlsFailure(
  host: string,
  port: number,
  settings: TlsProbeSettings,
  timeoutMs: number,
): Promise<string | null> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (answer: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const socket = connect({
      host,
      port,
      // SNI carries host names only; node:tls refuses an IP address there (RFC 6066, 3).
      ...(isIP(host) ? {} : { servername: host }),
      ...(settings.ca === null ? {} : { ca: [settings.ca] }),
      ...(settings.cert === null || settings.key === null
        ? {}
        : { cert: settings.cert, key: settings.key }),
      ALPNProtocols: ["http/1.1"],
    });
    const timer = setTimeout(() => finish(null), timeoutMs);
    socket.once("secureConnect", () => {
      // Under TLS 1.3 the member judges the client certificate after the handshake: its alert
      // comes in answer to the first bytes sent.
      socket.write(`GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    });
    socket.once("data", () => finish(null));
    socket.once("error", (error: Error & { code?: string }) => {
      finish(describeTlsError(error, settings.certFile));
    });
    socket.once("close", () => finish(null));
  });
}

/** Words for a `node:tls` error; `null` for one that is not about certificates. */
function describeTlsError(
  error: Error & { code?: string },
  certFile: string | null,
): string | null {
  const code = error.code ?? "";
  const alert = /ALERT_([A-Z_]+)$/.exec(code)?.[1]?.toLowerCase().replaceAll("_", " ") ??
    /received fatal alert: (\w+)/.exec(error.message)?.[1];
  if (alert !== undefined) {
    return certFile === null
      ? `the member refused the TLS connection (alert: ${alert}): it asks for a client ` +
        `certificate; name one with --numbers-cert-file and --numbers-key-file`
      : `the member refused the client certificate in ${certFile} (alert: ${alert}): it must ` +
        `be signed by a CA the members trust (etcd's --trusted-ca-file), unexpired, and allow ` +
        `client authentication`;
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return `the member's certificate is not trusted (${code}): name the CA that signed it ` +
      `with --numbers-ca-file`;
  }
  if (/certificate|UnknownIssuer|NotValidForName/i.test(error.message)) {
    return `the member's certificate is not trusted (${error.message}): name the CA that ` +
      `signed it with --numbers-ca-file`;
  }
  return null;
}
