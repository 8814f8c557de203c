/**
 * Reads the host and judges it: the doctor without its command line.
 *
 * @module
 */

import { errorReason } from "./_error_reason.ts";
import type { Listen } from "../adapters/thread_listener.ts";
import { type ListenBacklog, probeListenBacklog } from "./backlog_probe.ts";
import {
  checkHost,
  type DoctorFacts,
  type DoctorItem,
  syncookiesOff,
  THRESHOLDS,
} from "./checks.ts";
import { capacityHardLimit, type CapacityPlan, planCapacity } from "./capacity.ts";

/** The hard limit the open-files check asks for. */
const HARD_LIMIT_WANTED = THRESHOLDS.openFilesOk;
import { probeHardLimitRaise } from "./hard_limit_probe.ts";
import { readOpenFileLimit } from "./read_open_files.ts";
import { checkCertificate } from "./certificate_check.ts";
import { readCertificateInfo } from "../tls/tls_files.ts";
import { type ProcOptions, readSysctls, readTextFile, sysctlPath } from "./read_sysctls.ts";

/** Where the doctor reads the host from; every field is for tests that fake the host. */
export interface DoctorOptions extends ProcOptions {
  /**
   * Measures the listen backlog.
   *
   * @default {probeListenBacklog with `listen`: a real listener on 127.0.0.1 port 0, read back with ss}
   */
  probeBacklog?: () => Promise<ListenBacklog>;
  /**
   * Starts a listener the way a thread does (the runtime adapter's `listen`), for the backlog
   * probe; needed unless `probeBacklog` is given.
   * @default {undefined}
   */
  listen?: Listen;
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
  /**
   * Connections to size the host for (`--connections`): adds {@linkcode DoctorReport.capacity}.
   * @default {undefined: no capacity plan}
   */
  connections?: number;
  /**
   * Whether the open-file hard limit can be raised to a value from here (null: cannot tell).
   *
   * @default {probeHardLimitRaise: `ulimit -Hn N` tried in a child shell}
   */
  canRaiseHardLimit?: (to: number) => Promise<boolean | null>;
}

/** The doctor's findings. */
export interface DoctorReport {
  /** One per setting, in report order. */
  items: DoctorItem[];
  /** Whether SYN cookies are off, the one finding that makes the doctor exit 1. */
  syncookiesOff: boolean;
  /** Whether the certificate given is expired or unreadable, which makes the doctor exit 3. */
  certificateBad: boolean;
  /** With `connections`: what holding them needs here, and how many processes. */
  capacity?: CapacityPlan;
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
  const listen = options.listen;
  const probe = options.probeBacklog ??
    (() =>
      listen === undefined
        ? Promise.reject(new TypeError("diagnose needs probeBacklog or listen"))
        : probeListenBacklog({ listen }));
  const [sysctls, openFiles, backlog] = await Promise.all([
    readSysctls(options),
    readOpenFileLimit(options),
    probe().catch((error) => ({ error: errorReason(error) })),
  ]);
  // Asked only where the advice would raise the hard limit: the shell costs a few milliseconds.
  const raise = options.canRaiseHardLimit ?? probeHardLimitRaise;
  const hardLimitRaisable = "error" in openFiles || openFiles.hard < HARD_LIMIT_WANTED
    ? await raise(HARD_LIMIT_WANTED)
    : null;
  const facts: DoctorFacts = { sysctls, openFiles, backlog, hardLimitRaisable };
  const items = checkHost(facts);
  if (options.tlsCert !== undefined) {
    items.push(
      checkCertificate(options.tlsCert, readCertificateInfo(options.tlsCert), options.now ?? 0),
    );
  }
  const report: DoctorReport = {
    items,
    syncookiesOff: syncookiesOff(facts),
    certificateBad: items.some((item) => item.name === "tls certificate" && item.verdict === "bad"),
  };
  if (options.connections === undefined) return report;
  const procRoot = options.procRoot ?? "/proc";
  const readFile = options.readFile ?? readTextFile;
  const read = (path: string) =>
    readFile(path).then((text) => text.trim().replace(/\s+/g, " "), () => null);
  const sysctl = (name: string) => read(sysctlPath(name, procRoot));
  const [nrOpen, fileMax, tcpMem, meminfo] = await Promise.all([
    sysctl("fs.nr_open"),
    sysctl("fs.file-max"),
    sysctl("net.ipv4.tcp_mem"),
    readFile(`${procRoot}/meminfo`).catch(() => null),
  ]);
  const kib = (name: string) => {
    const match = meminfo === null ? null : new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(meminfo);
    return match === null ? null : Number(match[1]) * 1024;
  };
  const value = (name: keyof typeof sysctls) => {
    const reading = sysctls[name];
    return "value" in reading ? reading.value : null;
  };
  const capacityTarget = capacityHardLimit(options.connections, openFiles);
  report.capacity = planCapacity({
    connections: options.connections,
    openFiles,
    hardLimitRaisable: capacityTarget === null ? null : await raise(capacityTarget),
    nrOpen,
    fileMax,
    tcpMem,
    localPortRange: value("net.ipv4.ip_local_port_range"),
    somaxconn: value("net.core.somaxconn"),
    synBacklog: value("net.ipv4.tcp_max_syn_backlog"),
    memAvailableBytes: kib("MemAvailable"),
    memTotalBytes: kib("MemTotal"),
  });
  return report;
}
