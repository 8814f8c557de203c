/**
 * Reads the host and judges it: the doctor without its command line.
 *
 * @module
 */

import { errorReason } from "./_error_reason.ts";
import { type ListenBacklog, probeListenBacklog } from "./backlog_probe.ts";
import { checkHost, type DoctorFacts, type DoctorItem, syncookiesOff } from "./checks.ts";
import { readOpenFileLimit } from "./read_open_files.ts";
import { checkCertificate } from "./certificate_check.ts";
import { readCertificateInfo } from "../tls_files.ts";
import { type ProcOptions, readSysctls } from "./read_sysctls.ts";

/** Where the doctor reads the host from; every field is for tests that fake the host. */
export interface DoctorOptions extends ProcOptions {
  /**
   * Measures the listen backlog.
   *
   * @default {probeListenBacklog: a real listener on 127.0.0.1 port 0, read back with ss}
   */
  probeBacklog?: () => Promise<ListenBacklog>;
  /**
   * The listener's certificate (`--tls-cert`), judged for how long it has left.
   *
   * @default {undefined: no certificate item}
   */
  tlsCert?: string;
  /**
   * The time of day the certificate is judged at, in ms since the epoch; the doctor's command
   * line passes the wall clock (server code reads none).
   *
   * @default {0}
   */
  now?: number;
}

/** The doctor's findings. */
export interface DoctorReport {
  /** One per setting, in report order. */
  items: DoctorItem[];
  /** Whether SYN cookies are off, the one finding that makes the doctor exit 1. */
  syncookiesOff: boolean;
  /** Whether the certificate given is expired or unreadable, which makes the doctor exit 3. */
  certificateBad: boolean;
}

/**
 * Reads the host's TCP settings, open-file limit and real listen backlog, and judges each.
 *
 * @param options Where to read from; the defaults read this host.
 * @returns The findings.
 *
 * @example
 * ```ts
 * const report = await diagnose();
 * for (const item of report.items) console.log(item.verdict, item.name, item.value);
 * ```
 */
export async function diagnose(options: DoctorOptions = {}): Promise<DoctorReport> {
  const probe = options.probeBacklog ?? (() => probeListenBacklog());
  const [sysctls, openFiles, backlog] = await Promise.all([
    readSysctls(options),
    readOpenFileLimit(options),
    probe().catch((error) => ({ error: errorReason(error) })),
  ]);
  const facts: DoctorFacts = { sysctls, openFiles, backlog };
  const items = checkHost(facts);
  if (options.tlsCert !== undefined) {
    items.push(
      checkCertificate(options.tlsCert, readCertificateInfo(options.tlsCert), options.now ?? 0),
    );
  }
  return {
    items,
    syncookiesOff: syncookiesOff(facts),
    certificateBad: items.some((item) => item.name === "tls certificate" && item.verdict === "bad"),
  };
}
