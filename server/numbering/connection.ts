/**
 * What tallyho remembers about one connection, whatever the runtime.
 *
 * @module
 */

import type { IpWords } from "../limits/ip_key.ts";
import type { LineState } from "./line_scanner.ts";
import type { ProxyHeaderState } from "../proxy_header.ts";

// Bits of `Connection.flags`.
const ENDS_WITH_CR = 1;
const READ_PAUSED = 2;
const CLOSING = 4;
const ADMITTED = 8;
const HEARD = 16;

/** `flags` with `bit` set or cleared (a module function: a private method would brand every instance). */
function withFlag(flags: number, bit: number, on: boolean): number {
  return on ? flags | bit : flags & ~bit;
}

/**
 * Per-connection state; the adapters keep one per socket and nothing else per connection.
 *
 * Kept small, as a million of them may be held: Bun 1.4.5's JSC gives an object 16 bytes and 8
 * a field, rounded up to a size class, so the five yes-or-no fields share one number (`flags`,
 * read and written through accessors on the prototype, which cost no memory per object), and
 * what only PROXY and TLS connections use is in {@linkcode ConnectionExtra}: 12 fields, 112
 * bytes, where 22 took 224 (docs/tuning.md, "A held connection").
 */
export class Connection implements LineState {
  /**
   * The connection's number in `connection` numbering; 0 until its first message. Its reply is
   * encoded from it for each message, not kept.
   */
  number = 0;
  pendingLineBytes = 0;
  /**
   * Lines read whose replies are not encoded yet. They hold no memory and no number: a reply is
   * numbered and encoded only when the socket can take it (in bounded slices), so what a client
   * that never reads makes the server hold is a count, however many lines it sends.
   */
  owedReplies = 0;
  /** Encoded reply bytes the socket has not taken yet, at most one slice (Bun only), or null. */
  unsent: Uint8Array | null = null;
  /** The yes-or-no fields below, one bit each. */
  flags = 0;
  /** Its place in its adapter's list of open sockets (Bun), or -1 while it holds none. */
  openIndex = -1;
  /** The address table's slot that counts the client's address, or -1 when none does. */
  addressSlot = -1;
  /** When it was accepted (ms). */
  openedAt = 0;
  /** When it last read or had replies written (ms). */
  lastActivityAt = 0;
  /** When its unfinished line began (ms); 0 when no line is unfinished. */
  lineStartedAt = 0;
  /** Since when replies have waited on a client that does not read (ms); 0 when none wait. */
  blockedSince = 0;
  /**
   * What only PROXY-protocol and TLS-after-header connections need, made when one does; null on
   * every plain connection, so the hot path has one check for both and a held connection does
   * not carry seven fields it never uses (docs/tuning.md, "A held connection").
   */
  extra: ConnectionExtra | null = null;

  /** Whether the last byte of its unfinished line is `\r` (see line_scanner.ts). */
  get pendingEndsWithCr(): boolean {
    return (this.flags & ENDS_WITH_CR) !== 0;
  }
  set pendingEndsWithCr(on: boolean) {
    this.flags = withFlag(this.flags, ENDS_WITH_CR, on);
  }

  /** Whether reading is paused because the replies owed passed `maxPendingReplyBytes`. */
  get readPaused(): boolean {
    return (this.flags & READ_PAUSED) !== 0;
  }
  set readPaused(on: boolean) {
    this.flags = withFlag(this.flags, READ_PAUSED, on);
  }

  /** Whether the server is closing this connection once its queue is written. */
  get closing(): boolean {
    return (this.flags & CLOSING) !== 0;
  }
  set closing(on: boolean) {
    this.flags = withFlag(this.flags, CLOSING, on);
  }

  /** Whether the gate admitted it (and must count it out when it closes). */
  get admitted(): boolean {
    return (this.flags & ADMITTED) !== 0;
  }
  set admitted(on: boolean) {
    this.flags = withFlag(this.flags, ADMITTED, on);
  }

  /** Whether it has delivered any data (its PROXY header apart). */
  get heard(): boolean {
    return (this.flags & HEARD) !== 0;
  }
  set heard(on: boolean) {
    this.flags = withFlag(this.flags, HEARD, on);
  }
}

/** The rare part of a {@linkcode Connection}: the PROXY protocol's state and the TLS upgrade. */
export class ConnectionExtra implements ProxyHeaderState {
  /**
   * What the PROXY protocol still asks of this connection: 0 nothing, or `PROXY_AWAIT` /
   * `PROXY_SNIFF` from server/limits/connection_gate.ts.
   */
  proxyPhase = 0;
  proxyGot = 0;
  proxyNeed = 0;
  proxyHeld: Uint8Array | null = null;
  proxyClient: IpWords | null = null;
  /**
   * Whether this is a trusted balancer's own connection, naming no client: from its accept until
   * its PROXY header names one, and for good after a `LOCAL` or `UNKNOWN` header. How it ends is
   * a health check's end (server/limits/connection_gate.ts), not a client's error.
   */
  fromBalancer = false;
  /**
   * The TLS socket a plain connection was upgraded to once its PROXY header was read (Bun); the
   * plain socket's own events are then ignored. Null for every other connection.
   */
  secure: object | null = null;
}
