/**
 * The bookkeeping of the capped admin relay, the same on every runtime: who holds a slot, who
 * gives one up when another connection needs it, which connections have not sent a request head
 * in time or have gone idle, and what each connection's first request head says it is. The
 * runtime parts (accepting, connecting, copying bytes) live in `_node_net_relay.ts` and
 * `_deno_relay.ts`.
 *
 * The places are shared so that nobody who can connect can lock the operator and the probes out.
 * Who a connection is shows only in its first request head, so nothing is decided about a
 * connection before its first bytes are read:
 *
 * - **New** (one descriptor each): at most `maxReading` connections accepted and not read yet. A
 *   new one that finds no room takes the place of the oldest (from the address holding the most).
 *   The pool is larger than a listen queue, so one round of accepts cannot push out a connection
 *   accepted before it.
 * - A connection whose first bytes hold its whole request head (any client that sends its request
 *   at once: curl, a browser, a probe) is placed at once: relayed, or answered by the relay.
 * - **Reading** (one descriptor each): at most `maxReading` connections that have sent part of a
 *   head, or that the relay answers itself. One that finds no room takes the place of one
 *   answered, else of the oldest still sending its head, from the address holding the most. A
 *   flood that sends a byte and waits only ever competes with itself here.
 * - A **probe** (`GET` or `HEAD` of `probePaths`) is answered by the relay itself and closed: it
 *   never needs a slot of the inner server.
 * - **Relayed** (three descriptors each): at most `maxConnections`. A head with the right bearer
 *   token makes the connection an operator's; the others may hold at most
 *   `maxConnections - reserve` slots, `perSource` of them from one address. When there is no slot,
 *   one that is not an operator's and is idle after its answer gives its slot up; when none is, the
 *   connection is answered 503 and closed. An operator's connection is never closed for another.
 *
 * @module
 */

import type { CappedHttpCounts } from "./capped_http.ts";
import { headerOf, parseRequestHead, type RequestHead } from "./_request_head.ts";
import { monotonicNow } from "../common/clock.ts";

/** One connection. */
export interface Relay {
  /** Closes both sides; set by the runtime part. */
  close: () => void;
  /** The client's address, as the runtime reports it. */
  readonly source: string;
  openedAt: number;
  lastActivityAt: number;
  /** Bytes of `\r\n\r\n` matched so far; 4 once the first request head is complete. */
  headMatched: number;
  /**
   * `new` until its first bytes are read, `head` while the rest of its first request head is read
   * (nothing reaches the inner server yet), `answer` while the relay answers it itself (a probe,
   * or no slot), `relay` once relayed to the inner server.
   */
  phase: "new" | "head" | "answer" | "relay";
  /** Whether its first request carried the admin token. */
  operator: boolean;
  /** The bytes of its first request head read so far (copies), while in the `head` phase. */
  pending: Uint8Array[];
  pendingBytes: number;
  /** Whether the inner server (or the relay itself) has started its first response. */
  answered: boolean;
  /** Whether that first response was a 401: a client without a valid token. */
  refusedToken: boolean;
  closed: boolean;
}

/** What the client's bytes mean for the relay, while its first request head is read. */
export type HeadOutcome =
  /** Not complete yet: read on. */
  | { kind: "wait" }
  /** A probe: answer it with the handler, then close. */
  | { kind: "probe"; head: RequestHead }
  /** No slot for it: write `bytes` (a 503), then close. */
  | { kind: "busy"; bytes: Uint8Array }
  /** Relay it: connect to the inner server and send `bytes` (everything read so far) first. */
  | { kind: "relay"; bytes: Uint8Array };

/** Options for {@linkcode RelayBook}. */
export interface RelayBookOptions {
  /** The most connections relayed to the inner server at once. */
  maxConnections: number;
  /** The most connections not read yet, and the most whose first request head is being read. */
  maxReading: number;
  headTimeoutMs: number;
  idleTimeoutMs: number;
  log: (line: string, level?: "info" | "warn") => void;
  /** Relayed slots only an operator's connection may take. */
  reserve: number;
  /** The most relayed slots one source address may hold, when not an operator's. */
  perSource: number;
  /** Paths the relay answers itself, for `GET` and `HEAD`. */
  probePaths: ReadonlySet<string>;
  /** Whether an `Authorization` header's value carries the admin token. */
  isOperator: (authorization: string) => boolean;
  /** The longest first request head read before the connection is relayed unread. */
  maxHeadBytes: number;
}

const HEAD_END = [13, 10, 13, 10];
// "HTTP/1.1 401" or "HTTP/1.0 401": the status sits at the same offset in both.
const STATUS_OFFSET = 9;
const UNAUTHORIZED = [52, 48, 49]; // "401"
const LOG_EVERY_MS = 10_000;

const BUSY_BODY = JSON.stringify({
  error: {
    status: 503,
    message: "The admin API holds as many connections as it may; try again in a moment",
  },
});
/** The answer to a connection that finds no relayed slot. */
export const BUSY_RESPONSE: Uint8Array = new TextEncoder().encode(
  `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n` +
    `content-length: ${BUSY_BODY.length}\r\nconnection: close\r\n\r\n${BUSY_BODY}`,
);

function concat(chunks: Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/** A count per source address. */
class PerSource {
  readonly #counts = new Map<string, number>();
  get(source: string): number {
    return this.#counts.get(source) ?? 0;
  }
  add(source: string): void {
    this.#counts.set(source, this.get(source) + 1);
  }
  remove(source: string): void {
    const left = this.get(source) - 1;
    if (left <= 0) this.#counts.delete(source);
    else this.#counts.set(source, left);
  }
}

/** Counts, shares and times the relay's connections. */
export class RelayBook {
  readonly #options: RelayBookOptions;
  readonly #relays = new Set<Relay>();
  /** Connections in the `new` phase, and per source. */
  #fresh = 0;
  readonly #freshBySource = new PerSource();
  /** Connections in the `head` and `answer` phases, and per source. */
  #reading = 0;
  readonly #readingBySource = new PerSource();
  /** Relayed connections, the operators' among them, and the others' per source. */
  #relayed = 0;
  #operators = 0;
  readonly #othersBySource = new PerSource();
  readonly #counts: CappedHttpCounts = {
    open: 0,
    refusedOverCap: 0,
    evicted: 0,
    timedOut: 0,
    probesAnswered: 0,
  };
  readonly #sweep: ReturnType<typeof setInterval>;
  #logged = { refusedOverCap: 0, evicted: 0 };
  #lastLogAt = { refusedOverCap: -Infinity, evicted: -Infinity };
  #lastAcceptErrorLogAt = -Infinity;

  /** @param options The caps, the shares, the timeouts and where warnings go. */
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
   * Admits a new connection, making room by closing the oldest one not read yet when there are
   * `maxReading` of those (see the module's description). Refuses it (counts and logs; the
   * caller closes it at once) only when none can be closed.
   *
   * @param source The client's address.
   * @param close Closes the connection and its relay.
   * @returns The relay, or `null` when refused.
   */
  admit(source: string, close: () => void): Relay | null {
    if (this.#fresh >= this.#options.maxReading && !this.#evictFresh()) return this.#refuse();
    this.#fresh++;
    this.#freshBySource.add(source);
    this.#counts.open++;
    const now = monotonicNow();
    const relay: Relay = {
      close,
      source,
      openedAt: now,
      lastActivityAt: now,
      headMatched: 0,
      phase: "new",
      operator: false,
      pending: [],
      pendingBytes: 0,
      answered: false,
      refusedToken: false,
      closed: false,
    };
    this.#relays.add(relay);
    return relay;
  }

  /**
   * Notes bytes from the client. While its first request head is read, keeps a copy of them
   * and says what to do once the head is complete; afterwards returns null (relay the chunk, or
   * drop it while the relay answers).
   *
   * @param relay The connection.
   * @param chunk What it sent (the caller may reuse the memory afterwards).
   * @returns What to do, or null once past the first request head.
   */
  fromClient(relay: Relay, chunk: Uint8Array): HeadOutcome | null {
    relay.lastActivityAt = monotonicNow();
    let matched = relay.headMatched;
    let end = -1;
    for (let i = 0; i < chunk.length && matched < 4; i++) {
      const byte = chunk[i];
      matched = byte === HEAD_END[matched] ? matched + 1 : byte === 13 ? 1 : 0;
      if (matched === 4) end = i + 1;
    }
    relay.headMatched = matched;
    if (relay.phase !== "new" && relay.phase !== "head") return null;
    if (chunk.length === 0) return { kind: "wait" };
    relay.pending.push(chunk.slice());
    relay.pendingBytes += chunk.length;
    if (end < 0 && relay.pendingBytes <= this.#options.maxHeadBytes) {
      if (relay.phase === "new" && !this.#startReading(relay)) return null;
      return { kind: "wait" };
    }
    const bytes = concat(relay.pending, relay.pendingBytes);
    relay.pending = [];
    relay.pendingBytes = 0;
    // A head too long to read here goes to the inner server unread, which answers it as it would.
    const head = end < 0 ? null : parseRequestHead(bytes);
    if (head !== null && this.#isProbe(head)) {
      return this.#answerHere(relay) ? { kind: "probe", head } : null;
    }
    const authorization = head === null ? null : headerOf(head, "authorization");
    const operator = authorization !== null && this.#options.isOperator(authorization);
    if (!this.#takeSlot(relay.source, operator)) {
      this.#refuse();
      return this.#answerHere(relay) ? { kind: "busy", bytes: BUSY_RESPONSE } : null;
    }
    this.#leavePool(relay);
    relay.phase = "relay";
    relay.operator = operator;
    return { kind: "relay", bytes };
  }

  /**
   * Notes bytes to the client from the inner server (or the relay's own answer). A connection
   * whose first answer is 401 (no valid token) is then held to the head timeout when idle, not
   * the idle timeout: Deno 2.9.6 keeps the connection open even when the response says
   * `Connection: close`.
   */
  fromServer(relay: Relay, chunk: Uint8Array): void {
    relay.lastActivityAt = monotonicNow();
    if (relay.answered) return;
    relay.answered = true;
    if (relay.phase === "answer" && chunk !== BUSY_RESPONSE) this.#counts.probesAnswered++;
    // The status line arrives in the first chunk in practice; a split one is simply not seen.
    relay.refusedToken = UNAUTHORIZED.every((byte, i) => chunk[STATUS_OFFSET + i] === byte);
  }

  /** Closes a relay and stops counting it (safe to call twice). */
  release(relay: Relay): void {
    if (relay.closed) return;
    relay.closed = true;
    this.#relays.delete(relay);
    this.#counts.open--;
    if (relay.phase !== "relay") this.#leavePool(relay);
    else {
      this.#relayed--;
      if (relay.operator) this.#operators--;
      else this.#othersBySource.remove(relay.source);
    }
    relay.pending = [];
    relay.close();
  }

  /**
   * Connections not answered yet: a request in the inner server's (or the relay's) hands, or one
   * accepted whose request is still to be read (an upgrade's old tree answers those too before it
   * closes them, rather than resetting a probe it accepted just before it stopped listening).
   */
  unanswered(): number {
    let count = 0;
    for (const relay of this.#relays) if (!relay.answered) count++;
    return count;
  }

  /** Logs a failed accept (at most once per 10 s); the caller backs off and accepts again. */
  acceptFailed(error: Error): void {
    const now = monotonicNow();
    if (now - this.#lastAcceptErrorLogAt < LOG_EVERY_MS) return;
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

  #isProbe(head: RequestHead): boolean {
    if (head.method !== "GET" && head.method !== "HEAD") return false;
    const query = head.target.indexOf("?");
    return this.#options.probePaths.has(query < 0 ? head.target : head.target.slice(0, query));
  }

  /** Leaves the pool of its phase (`new`; `head` and `answer`). */
  #leavePool(relay: Relay): void {
    if (relay.phase === "new") {
      this.#fresh--;
      this.#freshBySource.remove(relay.source);
    } else if (relay.phase === "head" || relay.phase === "answer") {
      this.#reading--;
      this.#readingBySource.remove(relay.source);
    }
  }

  /**
   * Moves a connection into the reading pool (`phase`, `head` by default), making room there
   * when it is full; when no room can be made, closes it and returns false.
   */
  #startReading(relay: Relay, phase: "head" | "answer" = "head"): boolean {
    if (relay.phase === "new" || relay.phase === "head") {
      if (relay.phase === "new") {
        if (this.#reading >= this.#options.maxReading && !this.#evictReading()) {
          this.#refuse();
          this.release(relay);
          return false;
        }
        this.#leavePool(relay);
        this.#reading++;
        this.#readingBySource.add(relay.source);
      }
      relay.phase = phase;
    }
    return true;
  }

  /** The relay answers the connection itself (a probe, a 503): it holds a place while it does. */
  #answerHere(relay: Relay): boolean {
    return this.#startReading(relay, "answer");
  }

  /** Takes a relayed slot for a connection whose head is complete; false when there is none. */
  #takeSlot(source: string, operator: boolean): boolean {
    const { maxConnections, reserve, perSource } = this.#options;
    if (!operator) {
      if (this.#othersBySource.get(source) >= perSource && !this.#evictRelayed(source)) {
        return false;
      }
      const others = this.#relayed - this.#operators;
      if (others >= maxConnections - reserve && !this.#evictRelayed(null)) return false;
    }
    if (this.#relayed >= maxConnections && !this.#evictRelayed(null)) return false;
    this.#relayed++;
    if (operator) this.#operators++;
    else this.#othersBySource.add(source);
    return true;
  }

  /** Closes the oldest connection not read yet, from the address holding the most of them. */
  #evictFresh(): boolean {
    return this.#evict(
      null,
      (relay) =>
        relay.phase === "new" ? [0, -this.#freshBySource.get(relay.source), relay.openedAt] : null,
    );
  }

  /**
   * Closes the reading connection that can best give its place up: one the relay has answered,
   * else the oldest still sending its head from the address reading the most.
   *
   * @returns Whether one was closed.
   */
  #evictReading(): boolean {
    return this.#evict(null, (relay) => {
      if (relay.phase === "answer") return relay.answered ? [0, 0, relay.lastActivityAt] : null;
      if (relay.phase !== "head") return null;
      return [1, -this.#readingBySource.get(relay.source), relay.openedAt];
    });
  }

  /** Closes the relayed connection, not an operator's, idle the longest after its answer. */
  #evictRelayed(source: string | null): boolean {
    return this.#evict(
      source,
      (relay) =>
        relay.phase === "relay" && !relay.operator && relay.answered
          ? [0, 0, relay.lastActivityAt]
          : null,
    );
  }

  /** Closes the relay with the lowest key (null: not a candidate). */
  #evict(source: string | null, keyOf: (relay: Relay) => [number, number, number] | null) {
    let best: Relay | null = null;
    let bestKey: [number, number, number] | null = null;
    for (const relay of this.#relays) {
      if (source !== null && relay.source !== source) continue;
      const key = keyOf(relay);
      if (key === null) continue;
      if (
        bestKey === null || key[0] < bestKey[0] ||
        (key[0] === bestKey[0] &&
          (key[1] < bestKey[1] || (key[1] === bestKey[1] && key[2] < bestKey[2])))
      ) {
        best = relay;
        bestKey = key;
      }
    }
    if (best === null) return false;
    this.#counts.evicted++;
    this.release(best);
    this.#logNow(
      "evicted",
      (count, total) =>
        `admin API: closed ${count} connection(s) without a complete request or idle, to make ` +
        `room for new ones (${total} since the start; ${this.#shares()})`,
    );
    return true;
  }

  #refuse(): null {
    this.#counts.refusedOverCap++;
    this.#logNow(
      "refusedOverCap",
      (count, total) =>
        `admin API: refused ${count} connection(s) over its cap of ` +
        `${this.#options.maxConnections} (${total} since the start; ${this.#shares()})`,
    );
    return null;
  }

  #shares(): string {
    const { maxConnections, maxReading, reserve, perSource } = this.#options;
    return `${maxConnections} relayed, ${reserve} of them kept for the token's holders and at ` +
      `most ${perSource} per address otherwise; ${maxReading} not read yet and ${maxReading} ` +
      `being read`;
  }

  #logNow(
    what: "refusedOverCap" | "evicted",
    line: (count: number, total: number) => string,
  ): void {
    const now = monotonicNow();
    if (now - this.#lastLogAt[what] < LOG_EVERY_MS) return;
    const total = this.#counts[what];
    this.#options.log(line(total - this.#logged[what], total), "warn");
    this.#logged[what] = total;
    this.#lastLogAt[what] = now;
  }

  #expire(): void {
    const now = monotonicNow();
    const { headTimeoutMs, idleTimeoutMs } = this.#options;
    for (const relay of this.#relays) {
      const late = relay.headMatched < 4 && now - relay.openedAt >= headTimeoutMs;
      // Answered without a token, or by the relay itself: nothing more is owed to it.
      const idleFor = relay.refusedToken || (relay.phase === "answer" && relay.answered)
        ? headTimeoutMs
        : idleTimeoutMs;
      if (late || now - relay.lastActivityAt >= idleFor) {
        this.#counts.timedOut++;
        this.release(relay);
      }
    }
  }
}
