/**
 * Which connections have overstayed: silent since they connected, idle, holding an unfinished
 * line (slowloris), or leaving replies unread. Adapters sweep their connections with this a few
 * times a second and close what it names, counting each by reason.
 *
 * @module
 */

import type { ServeConfig } from "../config/resolve_config.ts";
import type { Connection } from "../numbering/connection.ts";
import { Stat } from "../threads/thread_stats.ts";
import { PROXY_AWAIT } from "./connection_gate.ts";

/** How often adapters sweep, in milliseconds: the timeouts' resolution. */
export const SWEEP_EVERY_MS = 250;

/** The longest a full sweep waits, whatever the idle timeout. */
export const FULL_SWEEP_MAX_MS = 4000;

/**
 * How often an adapter looks at every connection, for the timeouts that every connection can
 * reach (idle, unfinished line, slow reader, all bounded by `idleTimeoutMs`): a sixteenth of the
 * idle timeout, so one fires at most about 6 % late, from every sweep up to every
 * {@linkcode FULL_SWEEP_MAX_MS}; never when the idle timeout is off. Looking at a million held
 * connections four times a second costs a core's worth of cache misses for nothing when the idle
 * timeout is a minute (measured in docs/tuning.md).
 *
 * @param idleTimeoutMs The idle timeout in force (0: off).
 * @returns Milliseconds between full sweeps; `Infinity` when none are needed.
 */
export function fullSweepEveryMs(idleTimeoutMs: number): number {
  if (idleTimeoutMs === 0) return Infinity;
  return Math.min(FULL_SWEEP_MAX_MS, Math.max(SWEEP_EVERY_MS, idleTimeoutMs / 16));
}

/**
 * How long a drain keeps a connection open that was accepted before it began and has not spoken
 * yet: a connect-per-request client sends its request right after connecting, and half-closed at
 * once it found its request dropped and the connection ended unanswered. Its first request is
 * answered and then the connection closed; one still silent this long is closed then (within the
 * drain timeout), so a silent client does not hold a stop up.
 */
export const FIRST_REQUEST_GRACE_MS = 1000;

/**
 * Whether a connection has yet to send its first bytes (or its PROXY header): the only ones the
 * first-message and proxy-header timeouts can close, which adapters check every sweep, apart
 * from the full sweeps.
 *
 * @param connection Its state.
 * @returns `true` while it has not spoken.
 */
export function awaitsFirstBytes(connection: Connection): boolean {
  return !connection.heard || connection.extra?.proxyPhase === PROXY_AWAIT;
}

/**
 * The stat to count when `connection` must be closed now, or -1 when it may stay.
 *
 * @param connection Its state.
 * @param now The time in ms.
 * @param config The timeouts in force.
 * @returns An index into the stats row, or -1.
 */
export function overstayed(connection: Connection, now: number, config: ServeConfig): number {
  const idle = config.idleTimeoutMs;
  if (connection.extra?.proxyPhase === PROXY_AWAIT) {
    // A balancer sends its header at once; one that does not is closed sooner than a client.
    return now - connection.openedAt > config.proxyHeaderTimeoutMs
      ? Stat.closedProxyHeaderTimeout
      : -1;
  }
  if (!connection.heard) {
    const first = config.firstMessageTimeoutMs;
    if (first > 0 && now - connection.openedAt > first) return Stat.closedFirstMessageTimeout;
  }
  if (idle === 0) return -1;
  if (connection.blockedSince > 0 && now - connection.blockedSince > idle) {
    return Stat.closedSlowReader;
  }
  if (connection.lineStartedAt > 0 && now - connection.lineStartedAt > idle) {
    return Stat.closedUnfinishedLine;
  }
  if (now - connection.lastActivityAt > idle) return Stat.closedIdleTimeout;
  return -1;
}
