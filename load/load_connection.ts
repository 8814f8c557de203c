/**
 * One client connection's state: what is in flight, when each request was sent, and where its
 * reply stream stands. One object per connection slot, reused when the slot reconnects, so a
 * connect-per-request run allocates no state per connection.
 *
 * @module
 */

import type { LineState } from "./reply_parser.ts";
import type { NumberingState } from "./reply_checker.ts";

/** A connection slot of one load thread. */
export class LoadConnection implements LineState, NumberingState {
  /** The slot's index within its thread. */
  readonly slot: number;
  /** The transport's socket while connected. */
  handle: unknown = null;
  /** Connected and not yet closed. */
  open = false;
  /** Closed (or being closed) by this side; errors that follow are not the server's doing. */
  closing = false;
  /** The slot will not connect again (its share of the count is done, or the run is stopping). */
  finished = false;
  /** Requests sent whose replies have not arrived. */
  inFlight = 0;
  /** Send times (performance.now) of the requests in flight, oldest at `stampHead`. */
  readonly stamps: Float64Array;
  stampHead = 0;
  /** When the current connect began (the latency start of a connect-per-request). */
  connectStartedAt = 0;
  /** When bytes last arrived or the connection opened, for the reply timeout. */
  lastActivity = 0;
  /** An error the transport saw before the close, e.g. `ECONNRESET`. */
  error: string | null = null;
  /** Idle workload: got its one reply and is being held open. */
  held = false;
  /** Hold workload: asked again after the hold. */
  asked = false;
  /** Hold workload: the ask after the hold is sent and not yet answered. */
  askPending = false;
  /** Server address for this slot, or `null` for the run's one host. */
  target: string | null = null;
  /** Local address to connect from, or `null` for the run's `source`. */
  localAddress: string | null = null;
  /** Milliseconds to wait before reconnecting after a failure; doubles up to a limit. */
  backoffMs = 0;
  /** Bytes a transport could not write yet, in order. */
  readonly pendingWrites: Uint8Array[] = [];
  /** A transport's write is in progress (Deno: one write at a time). */
  writing = false;
  lineBytes = 0;
  value = 0;
  digits = 0;
  lineFlags = 0;
  lastNumber = 0;
  numberingFlags = 0;

  /**
   * @param slot Index within the thread.
   * @param depth Most requests ever in flight on it.
   */
  constructor(slot: number, depth: number) {
    this.slot = slot;
    this.stamps = new Float64Array(depth);
  }

  /** Clears everything that belongs to one connection, before the slot connects again. */
  reset(): void {
    this.handle = null;
    this.open = false;
    this.closing = false;
    this.inFlight = 0;
    this.stampHead = 0;
    this.error = null;
    this.held = false;
    this.asked = false;
    this.askPending = false;
    this.pendingWrites.length = 0;
    this.writing = false;
    this.lineBytes = 0;
    this.value = 0;
    this.digits = 0;
    this.lineFlags = 0;
    this.lastNumber = 0;
    this.numberingFlags = 0;
  }
}
