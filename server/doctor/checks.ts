/**
 * The checks: for each setting, the thresholds, the verdict, why it matters under a flood, and
 * the exact command that fixes it. Pure: it judges values already read, so tests feed it any.
 *
 * @module
 */

import type { ListenBacklog } from "./backlog_probe.ts";
import type { OpenFileLimit } from "./read_open_files.ts";
import type { SysctlName, SysctlReading } from "./read_sysctls.ts";

/** How a setting fares: fine, worth changing, or a hole a flood goes through. */
export type Verdict = "ok" | "risky" | "bad";

/** One line of the doctor's report. */
export interface DoctorItem {
  /** The sysctl's name, `open files` or `listen backlog`. */
  name: string;
  /** The value found, as the kernel shows it; `null` when it could not be read. */
  value: string | null;
  verdict: Verdict;
  /** What the value means for a server on the internet. */
  why: string;
  /** The command that changes it; `null` when nothing needs changing or no command can. */
  fix: string | null;
}

/** What the checks judge. */
export interface DoctorFacts {
  sysctls: Record<SysctlName, SysctlReading>;
  openFiles: OpenFileLimit | { error: string };
  backlog: ListenBacklog | { error: string };
  /**
   * Whether this user may raise the open-file hard limit to `THRESHOLDS.openFilesOk` here (null:
   * not asked, or cannot tell).
   * @default {null}
   */
  hardLimitRaisable?: boolean | null;
}

/** The thresholds and recommended values the checks use. */
export const THRESHOLDS = {
  /** A SYN queue this long covers bursts even with cookies off; the kernel's own default on
   * hosts with 1 GiB or more is 1024-4096 depending on memory. */
  synBacklogOk: 4096,
  /** With cookies on, the SYN queue is capped by the listen backlog anyway; this is enough. */
  synBacklogOkWithCookies: 1024,
  /** SYN-ACK resends: 2 frees a spoofed SYN's slot after about 7 s instead of 63 s (5). */
  synackRetriesMax: 3,
  synackRetriesFix: 2,
  /** Bun 1.4 asks listen() for 512, Deno 2.9 for 511; somaxconn below that cuts them. */
  runtimeBacklog: 511,
  /** Below this an accept queue overflows on bursts any busy server sees. */
  backlogBad: 128,
  /** The kernel's default since Linux 5.4. */
  somaxconnFix: 4096,
  /** About the kernel's default range (32768-60999, 28232 ports). */
  localPortsOk: 28000,
  localPortRangeFix: "1024 65535",
  /** How long a closed connection keeps its port (TIME_WAIT), in seconds; fixed in Linux. */
  timeWaitSeconds: 60,
  openFilesOk: 65536,
  openFilesBad: 4096,
} as const;

const sysctlFix = (name: string, value: string | number): string =>
  typeof value === "string" && value.includes(" ")
    ? `sysctl -w ${name}="${value}"`
    : `sysctl -w ${name}=${value}`;

function unreadable(name: string, error: string, fix: string | null = null): DoctorItem {
  return { name, value: null, verdict: "risky", why: `Could not check: ${error}`, fix };
}

function unexpected(name: string, value: string): DoctorItem {
  return {
    name,
    value,
    verdict: "risky",
    why: `Not a value this check knows: got ${JSON.stringify(value)}`,
    fix: null,
  };
}

const integer = (text: string): number | null => /^\d+$/.test(text) ? Number(text) : null;

/** Whether SYN cookies are off (the doctor's exit code says so); unreadable counts as not off. */
export function syncookiesOff(facts: DoctorFacts): boolean {
  const reading = facts.sysctls["net.ipv4.tcp_syncookies"];
  return "value" in reading && reading.value === "0";
}

function checkSyncookies(reading: SysctlReading): DoctorItem {
  const name = "net.ipv4.tcp_syncookies";
  if ("error" in reading) return unreadable(name, reading.error);
  const fix = sysctlFix(name, 1);
  switch (reading.value) {
    case "1":
      return {
        name,
        value: "1",
        verdict: "ok",
        why: "SYN cookies are on: once a SYN flood fills a listener's SYN queue, the kernel " +
          "answers new SYNs with a cookie instead of storing them, so real clients still connect.",
        fix: null,
      };
    case "2":
      return {
        name,
        value: "2",
        verdict: "risky",
        why: "SYN cookies are sent for every SYN, flood or not (a testing mode): connections " +
          "lose the TCP options a cookie cannot carry when timestamps are off.",
        fix,
      };
    case "0":
      return {
        name,
        value: "0",
        verdict: "bad",
        why: "SYN cookies are off: a SYN flood from spoofed addresses fills the SYN queue with " +
          "half-open connections, and every real client's SYN after that is dropped.",
        fix,
      };
    default:
      return unexpected(name, reading.value);
  }
}

function checkSynBacklog(reading: SysctlReading, cookiesOn: boolean): DoctorItem {
  const name = "net.ipv4.tcp_max_syn_backlog";
  if ("error" in reading) return unreadable(name, reading.error);
  const value = integer(reading.value);
  if (value === null) return unexpected(name, reading.value);
  const role = "A listener's SYN queue is capped by its listen backlog; this setting adds a " +
    "limit only while SYN cookies are off, keeping its last quarter for peers already known.";
  if (value >= THRESHOLDS.synBacklogOk) {
    return { name, value: reading.value, verdict: "ok", why: role, fix: null };
  }
  if (cookiesOn && value >= THRESHOLDS.synBacklogOkWithCookies) {
    return {
      name,
      value: reading.value,
      verdict: "ok",
      why: `${role} Cookies are on, so ${value} is enough.`,
      fix: null,
    };
  }
  return {
    name,
    value: reading.value,
    verdict: "risky",
    why: `${role} With cookies off, new clients are dropped once ${
      Math.ceil(value * 0.75)
    } half-open connections wait.`,
    fix: sysctlFix(name, THRESHOLDS.synBacklogOk),
  };
}

function checkSynackRetries(reading: SysctlReading): DoctorItem {
  const name = "net.ipv4.tcp_synack_retries";
  if ("error" in reading) return unreadable(name, reading.error);
  const value = integer(reading.value);
  if (value === null) return unexpected(name, reading.value);
  const fix = sysctlFix(name, THRESHOLDS.synackRetriesFix);
  if (value === 0) {
    return {
      name,
      value: reading.value,
      verdict: "risky",
      why: "A lost SYN-ACK is never resent: the client gets in only by resending its SYN, " +
        "a second or more later.",
      fix,
    };
  }
  // The SYN-ACK timer starts at 1 s and doubles: the last resend times out after 2^(n+1) - 1 s.
  const seconds = 2 ** (value + 1) - 1;
  const held = `A half-open connection whose peer never answers (a spoofed SYN) holds its ` +
    `SYN-queue slot for about ${seconds} s while the SYN-ACK is resent ${value} times (the ` +
    "kernel cuts that to 2 resends only once the queue is half full of such entries).";
  if (value <= THRESHOLDS.synackRetriesMax) {
    return { name, value: reading.value, verdict: "ok", why: held, fix: null };
  }
  return {
    name,
    value: reading.value,
    verdict: "risky",
    why: `${held} ${THRESHOLDS.synackRetriesFix} frees every such slot after about ` +
      `${2 ** (THRESHOLDS.synackRetriesFix + 1) - 1} s, so a slow flood cannot hold the queue ` +
      "either.",
    fix,
  };
}

function checkSomaxconn(reading: SysctlReading): DoctorItem {
  const name = "net.core.somaxconn";
  if ("error" in reading) return unreadable(name, reading.error);
  const value = integer(reading.value);
  if (value === null) return unexpected(name, reading.value);
  const role = "Caps every listen backlog: how many finished handshakes may wait for a thread " +
    "to accept them (and at most how many half-open ones are kept).";
  if (value >= THRESHOLDS.runtimeBacklog) {
    return { name, value: reading.value, verdict: "ok", why: role, fix: null };
  }
  return {
    name,
    value: reading.value,
    verdict: value < THRESHOLDS.backlogBad ? "bad" : "risky",
    why: `${role} Bun and Deno ask for 512 and 511; the kernel cuts that to ${value}, and a ` +
      "burst of more connections than that is dropped while the threads catch up.",
    fix: sysctlFix(name, THRESHOLDS.somaxconnFix),
  };
}

function checkAbortOnOverflow(reading: SysctlReading): DoctorItem {
  const name = "net.ipv4.tcp_abort_on_overflow";
  if ("error" in reading) return unreadable(name, reading.error);
  if (reading.value === "0") {
    return {
      name,
      value: "0",
      verdict: "ok",
      why: "When an accept queue is full the kernel ignores the client's last ACK and the " +
        "client's resend gets in once the threads catch up: a burst costs delay, not errors.",
      fix: null,
    };
  }
  if (reading.value === "1") {
    return {
      name,
      value: "1",
      verdict: "risky",
      why: "When an accept queue is full the kernel resets the client: a short burst becomes " +
        "'connection reset' errors instead of a short delay.",
      fix: sysctlFix(name, 0),
    };
  }
  return unexpected(name, reading.value);
}

function checkMigrateReq(reading: SysctlReading): DoctorItem {
  const name = "net.ipv4.tcp_migrate_req";
  const role = "tallyho's threads share the port with SO_REUSEPORT, one listener each.";
  if ("error" in reading) {
    return {
      name,
      value: null,
      verdict: "risky",
      why: `${role} This kernel has no such setting (it came in Linux 5.14), so connections ` +
        `queued on a listener that closes (a crash, an upgrade) are reset. (${reading.error})`,
      fix: "none on this kernel: Linux 5.14 or newer has it",
    };
  }
  if (reading.value === "1") {
    return {
      name,
      value: "1",
      verdict: "ok",
      why: `${role} When one closes (a thread restarted after a crash, or the old tree's ` +
        "listeners in an upgrade, kill -USR2), the connections in its queues move to another " +
        "listener on the port instead of being reset.",
      fix: null,
    };
  }
  if (reading.value === "0") {
    return {
      name,
      value: "0",
      verdict: "risky",
      why: `${role} When one closes (a thread restarted after a crash, or the old tree's ` +
        "listeners in an upgrade, kill -USR2), the connections in its SYN and accept queues " +
        "are reset instead of moving to another listener: an upgrade is then not invisible.",
      fix: sysctlFix(name, 1),
    };
  }
  return unexpected(name, reading.value);
}

function checkLocalPortRange(reading: SysctlReading): DoctorItem {
  const name = "net.ipv4.ip_local_port_range";
  if ("error" in reading) return unreadable(name, reading.error);
  const match = /^(\d+) (\d+)$/.exec(reading.value);
  if (!match) return unexpected(name, reading.value);
  const ports = Number(match[2]) - Number(match[1]) + 1;
  const rate = Math.floor(ports / THRESHOLDS.timeWaitSeconds);
  const why = `${ports} source ports for connections this host opens (a proxy in front of ` +
    `tallyho, load generators, health checks). A closed one keeps its port ` +
    `${THRESHOLDS.timeWaitSeconds} s in TIME_WAIT, so about ${rate} new connections a second ` +
    "to one address and port.";
  if (ports >= THRESHOLDS.localPortsOk) {
    return { name, value: reading.value, verdict: "ok", why, fix: null };
  }
  return {
    name,
    value: reading.value,
    verdict: "risky",
    why: `${why} Past that, connect() fails with EADDRNOTAVAIL.`,
    fix: sysctlFix(name, THRESHOLDS.localPortRangeFix),
  };
}

const showLimit = (n: number): string => (n === Infinity ? "unlimited" : String(n));

/**
 * The advice for a hard open-file limit below `target`: the shell command where this user may
 * raise it, and otherwise where the limit is set (a shell cannot raise it, not even root's
 * without CAP_SYS_RESOURCE, as in most containers).
 *
 * @param target The limit wanted.
 * @param raisable Whether `ulimit -Hn target` works here (null: cannot tell).
 * @returns What to add to the item's `why`, and its `fix`.
 */
export function hardLimitAdvice(
  target: number,
  raisable: boolean | null,
): { how: string; fix: string | null } {
  if (raisable === false) {
    return {
      how: `A shell here cannot raise the hard limit ('ulimit -Hn ${target}' is refused, as ` +
        `it is even for root without CAP_SYS_RESOURCE, in most containers): set it where tallyho ` +
        `is started: LimitNOFILE=${target} in its systemd unit, a 'nofile' line in ` +
        `/etc/security/limits.conf for login sessions, or the container runtime's ` +
        `--ulimit nofile=${target}:${target} (docker, podman).`,
      fix: null,
    };
  }
  return {
    how: `Raise it in the shell that starts tallyho (the hard limit needs root) or with ` +
      `LimitNOFILE=${target} in its systemd unit.`,
    fix: `ulimit -Hn ${target} && ulimit -Sn ${target}`,
  };
}

function checkOpenFiles(
  limit: OpenFileLimit | { error: string },
  raisable: boolean | null,
): DoctorItem {
  const name = "open files";
  const target = THRESHOLDS.openFilesOk;
  const hard = hardLimitAdvice(target, raisable);
  const how = "error" in limit || limit.hard < target
    ? hard.how
    : `Raise it in the shell that starts tallyho or with LimitNOFILE=${target} in its systemd unit.`;
  if ("error" in limit) return unreadable(name, `${limit.error}. ${how}`, hard.fix);
  const value = `soft ${showLimit(limit.soft)}, hard ${showLimit(limit.hard)}`;
  const role = "Every connection is one file descriptor; Bun and Deno raise the soft limit to " +
    "the hard one when they start.";
  if (limit.soft >= target) {
    return {
      name,
      value,
      verdict: "ok",
      why: `${role} tallyho can hold about ${showLimit(limit.soft)} connections at once.`,
      fix: null,
    };
  }
  return {
    name,
    value,
    verdict: limit.soft < THRESHOLDS.openFilesBad ? "bad" : "risky",
    why: `${role} tallyho can hold only about ${limit.soft} connections at once; past that, ` +
      `accept fails (EMFILE) and new clients wait in the queue until some leave. ${how}`,
    fix: limit.hard >= target ? `ulimit -Sn ${target}` : hard.fix,
  };
}

function checkBacklog(
  probe: ListenBacklog | { error: string },
  somaxconn: SysctlReading,
): DoctorItem {
  const name = "listen backlog";
  if ("error" in probe) return unreadable(name, probe.error);
  const value = probe.backlog;
  const role = `What ${probe.runtime}'s listener (reusePort, as each tallyho thread opens it) ` +
    `really got, read back with ss -ltn: up to ${value} finished handshakes wait per thread.`;
  if (value >= THRESHOLDS.runtimeBacklog) {
    return { name, value: String(value), verdict: "ok", why: role, fix: null };
  }
  const cap = "value" in somaxconn ? integer(somaxconn.value) : null;
  const capped = cap !== null && value >= cap;
  return {
    name,
    value: String(value),
    verdict: value < THRESHOLDS.backlogBad ? "bad" : "risky",
    why: capped
      ? `${role} net.core.somaxconn (${cap}) cut it down from what ${probe.runtime} asked for.`
      : `${role} ${probe.runtime} asked for no more; each thread has its own queue.`,
    fix: capped
      ? sysctlFix("net.core.somaxconn", THRESHOLDS.somaxconnFix)
      : "tallyho serve --threads N with more threads (each thread's listener has its own queue)",
  };
}

/**
 * Judges a host's settings.
 *
 * @param facts What was read from the host.
 * @returns One item per setting, in report order.
 *
 * @example
 * ```ts
 * const items = checkHost(facts);
 * const bad = items.filter((item) => item.verdict === "bad");
 * ```
 */
export function checkHost(facts: DoctorFacts): DoctorItem[] {
  const s = facts.sysctls;
  const cookies = s["net.ipv4.tcp_syncookies"];
  const cookiesOn = "value" in cookies && (cookies.value === "1" || cookies.value === "2");
  return [
    checkSyncookies(cookies),
    checkSynBacklog(s["net.ipv4.tcp_max_syn_backlog"], cookiesOn),
    checkSynackRetries(s["net.ipv4.tcp_synack_retries"]),
    checkSomaxconn(s["net.core.somaxconn"]),
    checkBacklog(facts.backlog, s["net.core.somaxconn"]),
    checkAbortOnOverflow(s["net.ipv4.tcp_abort_on_overflow"]),
    checkMigrateReq(s["net.ipv4.tcp_migrate_req"]),
    checkLocalPortRange(s["net.ipv4.ip_local_port_range"]),
    checkOpenFiles(facts.openFiles, facts.hardLimitRaisable ?? null),
  ];
}
