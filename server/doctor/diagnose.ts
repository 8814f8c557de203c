/**
 * Reads the host and judges it: the doctor without its command line.
 *
 * @module
 */

import { errorReason } from "./_error_reason.ts";
import { type ListenBacklog, probeListenBacklog } from "./backlog_probe.ts";
import { checkHost, type DoctorFacts, type DoctorItem, syncookiesOff } from "./checks.ts";
import { readOpenFileLimit } from "./read_open_files.ts";
import { type ProcOptions, readSysctls } from "./read_sysctls.ts";

/** Where the doctor reads the host from; every field is for tests that fake the host. */
export interface DoctorOptions extends ProcOptions {
  /**
   * Measures the listen backlog.
   *
   * @default {probeListenBacklog: a real listener on 127.0.0.1 port 0, read back with ss}
   */
  probeBacklog?: () => Promise<ListenBacklog>;
}

/** The doctor's findings. */
export interface DoctorReport {
  /** One per setting, in report order. */
  items: DoctorItem[];
  /** Whether SYN cookies are off, the one finding that makes the doctor exit 1. */
  syncookiesOff: boolean;
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
  return { items: checkHost(facts), syncookiesOff: syncookiesOff(facts) };
}
