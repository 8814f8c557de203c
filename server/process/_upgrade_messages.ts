/**
 * The messages of an upgrade's handover channel, one JSON line each. The channel is a socket pair
 * the old supervisor makes when it starts the new one and hands it as an inherited descriptor
 * (named in {@linkcode UPGRADE_CHANNEL_ENV}): it has no path, so no other process can connect to
 * it, and whatever says `hello` on it is the process this tree started. The steps, in order:
 *
 * 1. new -> old `hello`: the new supervisor has planned its configuration and wants the numbers.
 * 2. The old one stops leasing (leases in flight finish, new ones wait) and closes its source (a
 *    state file's lock is released); old -> new `handover` with the port, the admin port and the
 *    old tree's high-water mark.
 * 3. The new one opens the source (numbers in memory start above the mark); new -> old
 *    `source-open`: from then on the old tree's processes lease through the new tree (`lease` /
 *    `grant` / `deny`), so that they do not run out of numbers while it starts. It starts its
 *    processes on the same port (SO_REUSEPORT: both trees accept for a moment), each of which
 *    leases its first block before it listens; each lease it grants itself is first reported to
 *    the old one (`leased`), so that if it dies half way the old one resumes above everything it
 *    could have served. Only once every process holds numbers: new -> old `listening`.
 * 4. The old one closes its admin API's listener (the requests it accepted are still answered),
 *    old -> new `admin-free`, and the new one binds the admin port. The old one stops accepting
 *    (the kernel moves the connections queued on its listeners to the new ones with
 *    net.ipv4.tcp_migrate_req=1), and old -> new `released`; new -> old `taken`, written before
 *    the new one stops reporting its leases. If the channel ends or the new supervisor exits
 *    before `taken` (it died after it listened), the old one takes its numbers back above every
 *    report, as below, and accepts and serves its admin API again.
 *    It serves its open connections until they close or its drain timeout passes, then exits;
 *    meanwhile its processes lease through the new tree.
 *
 * Any failure before `listening` (the new one exits, says `failed`, or is silent too long) leaves
 * the old tree serving: it opens its source again above every mark it knows (retrying until it
 * can, while the source is unreachable) and leases on.
 *
 * @module
 */

/** Names the inherited descriptor of the handover channel to the new supervisor. */
export const UPGRADE_CHANNEL_ENV = "TALLYHO_UPGRADE_FD";

/** The descriptor the channel has in the new supervisor: the first after stdin, stdout, stderr. */
export const UPGRADE_CHANNEL_FD = 3;

/** New supervisor to old. */
export type FromSuccessor =
  /** `version`: the tallyho version and runtime of the new tree, for the old tree's log. */
  | { type: "hello"; pid: number; version?: string }
  /** A lease about to be granted in the new tree ends at `last`. */
  | { type: "leased"; last: number }
  /** The new tree has opened the number source: the old tree's processes lease through it. */
  | { type: "source-open" }
  | { type: "listening" }
  /** The new tree was told the old one let go; it reports no lease after this line. */
  | { type: "taken" }
  | { type: "failed"; message: string }
  | { type: "grant"; id: number; first: number }
  | { type: "deny"; id: number; message: string };

/** Old supervisor to new. */
export type ToSuccessor =
  | {
    type: "handover";
    /** The old supervisor's pid. */
    pid: number;
    /** The port the old tree listens on. */
    port: number;
    /** The admin API's port, or null without one. */
    adminPort: number | null;
    /** The highest number the old tree was ever granted. */
    mark: number;
    /** The old tree's tallyho version and runtime. */
    version?: string;
  }
  /** The old tree's admin API no longer listens: the new one may bind the port. */
  | { type: "admin-free" }
  | { type: "released" }
  | { type: "lease"; id: number; count: number };
