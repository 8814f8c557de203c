/**
 * The bookkeeping of the capped admin relay, the same on every runtime: how many connections are
 * held, which are over the cap, which have not sent a request head in time or have gone idle.
 * The runtime parts (accepting, connecting, copying bytes) live in `_node_net_relay.ts` and
 * `_deno_relay.ts`.
 *
 * @module
 */

import type { CappedHttpCounts } from "./capped_http.ts";
import { monotonicNow } from "../monotonic_clock.ts";

/** One admitted connection. */
export interface Relay {
  /** Closes both sides; set by the runtime part. */
  close: () => void;
  openedAt: number;
  lastActivityAt: number;
  /** Bytes of `\r\n\r\n` matched so far; 4 once the first request head is complete. */
  headMatched: number;
  /** Whether the inner server has started its first response. */
  answered: boolean;
  /** Whether that first response was a 401: a client without a valid token. */
  refusedToken: boolean;
  closed: boolean;
}

/** Options for {@linkcode RelayBook}. */
export interface RelayBookOptions {
  maxConnections: number;
  headTimeoutMs: number;
  idleTimeoutMs: number;
  log: (line: string, level?: "info" | "warn") => void;
}

const HEAD_END = [13, 10, 13, 10];
// "HTTP/1.1 401" or "HTTP/1.0 401": the status sits at the same offset in both.
const STATUS_OFFSET = 9;
const UNAUTHORIZED = [52, 48, 49]; // "401"

/** Counts and times the relay's connections. */
export class RelayBook {
  readonly #options: RelayBookOptions;
  readonly #relays = new Set<Relay>();
  readonly #counts: CappedHttpCounts = { open: 0, refusedOverCap: 0, timedOut: 0 };
  readonly #sweep: ReturnType<typeof setInterval>;
  #refusedLogged = 0;
  #lastRefusalLogAt = -Infinity;
  #lastAcceptErrorLogAt = -Infinity;

  /** @param options The cap, the timeouts and where warnings go. */
  constructor(options: RelayBookOptions) {
    this.#options = options;
    const shortest = Math.min(options.headTimeoutMs, options.idleTimeoutMs);
    // One timer for every connection rather than one each: a flood costs no timers.
    this.#sweep = setInterval(
      () => this.#expire(),
      Math.max(50, Math.min(1000, Math.floor(shortest / 4))),
    );
  }

  /**
   * Admits a new connection unless the cap is reached (then counts and logs the refusal; the
   * caller closes the connection at once).
   *
   * @param close Closes the connection and its relay.
   * @returns The relay, or `null` when refused.
   */
  admit(close: () => void): Relay | null {
    const counts = this.#counts;
    if (counts.open >= this.#options.maxConnections) {
      counts.refusedOverCap++;
      const now = monotonicNow();
      if (now - this.#lastRefusalLogAt >= 10_000) {
        this.#options.log(
          `admin API: refused ${counts.refusedOverCap - this.#refusedLogged} connection(s) over ` +
            `its cap of ${this.#options.maxConnections} (${counts.refusedOverCap} since the start)`,
          "warn",
        );
        this.#refusedLogged = counts.refusedOverCap;
        this.#lastRefusalLogAt = now;
      }
      return null;
    }
    counts.open++;
    const now = monotonicNow();
    const relay: Relay = {
      close,
      openedAt: now,
      lastActivityAt: now,
      headMatched: 0,
      answered: false,
      refusedToken: false,
      closed: false,
    };
    this.#relays.add(relay);
    return relay;
  }

  /** Notes bytes from the client, looking for the end of its first request head. */
  fromClient(relay: Relay, chunk: Uint8Array): void {
    relay.lastActivityAt = monotonicNow();
    let matched = relay.headMatched;
    if (matched === 4) return;
    for (let i = 0; i < chunk.length && matched < 4; i++) {
      const byte = chunk[i];
      matched = byte === HEAD_END[matched] ? matched + 1 : byte === 13 ? 1 : 0;
    }
    relay.headMatched = matched;
  }

  /**
   * Notes bytes from the inner server. A connection whose first answer is 401 (no valid token)
   * is then held to the head timeout when idle, not the idle timeout: Deno 2.9.6 keeps the
   * connection open even when the response says `Connection: close`.
   */
  fromServer(relay: Relay, chunk: Uint8Array): void {
    relay.lastActivityAt = monotonicNow();
    if (relay.answered) return;
    relay.answered = true;
    // The status line arrives in the first chunk in practice; a split one is simply not seen.
    relay.refusedToken = UNAUTHORIZED.every((byte, i) => chunk[STATUS_OFFSET + i] === byte);
  }

  /** Closes a relay and stops counting it (safe to call twice). */
  release(relay: Relay): void {
    if (relay.closed) return;
    relay.closed = true;
    this.#relays.delete(relay);
    this.#counts.open--;
    relay.close();
  }

  /** Logs a failed accept (at most once per 10 s); the caller backs off and accepts again. */
  /** Connections not answered yet: a request accepted and still in the inner server's hands. */
  unanswered(): number {
    let count = 0;
    for (const relay of this.#relays) if (!relay.answered) count++;
    return count;
  }

  acceptFailed(error: Error): void {
    const now = monotonicNow();
    if (now - this.#lastAcceptErrorLogAt < 10_000) return;
    this.#lastAcceptErrorLogAt = now;
    this.#options.log(`admin API: cannot accept: ${error.message}`, "warn");
  }

  /** The figures so far. */
  counts(): CappedHttpCounts {
    return { ...this.#counts };
  }

  /** Closes every connection and stops the timer. */
  stop(): void {
    clearInterval(this.#sweep);
    for (const relay of this.#relays) this.release(relay);
  }

  #expire(): void {
    const now = monotonicNow();
    const { headTimeoutMs, idleTimeoutMs } = this.#options;
    for (const relay of this.#relays) {
      const late = relay.headMatched < 4 && now - relay.openedAt >= headTimeoutMs;
      const idleFor = relay.refusedToken ? headTimeoutMs : idleTimeoutMs;
      if (late || now - relay.lastActivityAt >= idleFor) {
        this.#counts.timedOut++;
        this.release(relay);
      }
    }
  }
}
