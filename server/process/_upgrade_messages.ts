/**
 * The messages of an upgrade's handover channel (a Unix socket the old supervisor makes and names
 * to the new one in {@linkcode UPGRADE_SOCKET_ENV}), one JSON line each. The steps, in order:
 *
 * 1. new -> old `hello`: the new supervisor has planned its configuration and wants the numbers.
 * 2. The old one stops leasing (leases in flight finish, new ones wait) and closes its source (a
 *    state file's lock is released); old -> new `handover` with the port, the admin port and the
 *    old tree's high-water mark.
 * 3. The new one opens the source (numbers in memory start above the mark), starts its processes
 *    on the same port (SO_REUSEPORT: both trees accept for a moment) and its admin API; each lease
 *    it grants is first reported to the old one (`leased`), so that if it dies half way the old
 *    one resumes above everything it could have served. new -> old `listening`.
 * 4. The old one stops its admin API, stops accepting (the kernel moves the connections queued on
 *    its listeners to the new ones with net.ipv4.tcp_migrate_req=1), and old -> new `released`;
 *    new -> old `taken`, written before the new one stops reporting its leases. If the channel
 *    ends before `taken` (the new tree died after it listened), the old one takes its numbers
 *    back above every report, as below, and accepts again.
 *    It serves its open connections until they close or its drain timeout passes, then exits;
 *    meanwhile its processes lease through the new tree (`lease` / `grant` / `deny`).
 *
 * Any failure before `listening` (the new one exits, says `failed`, or is silent too long) leaves
 * the old tree serving: it opens its source again above every mark it knows and leases on.
 *
 * @module
 */

/** Names the handover socket to the new supervisor. */
export const UPGRADE_SOCKET_ENV = "TALLYHO_UPGRADE_SOCKET";

/** New supervisor to old. */
export type FromSuccessor =
  | { type: "hello"; pid: number }
  /** A lease about to be granted in the new tree ends at `last`. */
  | { type: "leased"; last: number }
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
  }
  | { type: "released" }
  | { type: "lease"; id: number; count: number };
