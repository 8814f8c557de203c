/**
 * Turns the bytes a connection delivers into reply bytes: framing, numbering and encoding in one
 * place, shared by the Bun and Deno adapters.
 *
 * @module
 */

import type { ServeConfig } from "../config/resolve_config.ts";
import type { Connection } from "./connection.ts";
import { LINE_TOO_LONG, scanLines } from "./line_scanner.ts";
import { ReplyEncoder } from "./reply_encoder.ts";
import {
  NONE_GRANTED,
  type NumberLedger,
  NumbersUnavailableError,
  REFUSE_NOW,
} from "./number_ledger.ts";
import { type NumbersRetry, NumberWaitList } from "./number_wait_list.ts";
import type { CoarseClock } from "../common/clock.ts";
import { Stat } from "../threads/thread_stats.ts";

/** Why {@linkcode MessageHandler.handle} asks for a connection to be closed. */
export const CLOSE_LINE_TOO_LONG = -1;
// No leased number was available in time (the number source is down or used up). Not exported:
// an adapter tells only CLOSE_LINE_TOO_LONG apart and closes cleanly for any other reason.
const CLOSE_NUMBERS_UNAVAILABLE = -2;
/**
 * {@linkcode MessageHandler.next} on a thread that may not block: no number is granted yet. The
 * replies stay owed; the adapter sends nothing more on the connection and calls `next` again from
 * {@linkcode MessageHandler.whenNumbers}.
 */
export const WAIT_FOR_NUMBERS = -3;

/**
 * How long a thread may wait for its process's next block before it refuses the connection.
 * Blocks are leased ahead, so this wait happens only when a burst outruns the leases in flight
 * (the keeper then leases more each time) or the source is down, and then only once until a
 * block arrives (see NumberLedger): a healthy but briefly slow source delays a burst rather than
 * refusing it, and a source that is down costs each thread one wait, not one per client.
 */
const NUMBER_WAIT_MS = 1000;

/**
 * The most reply bytes encoded at a time for one connection. Replies are encoded only as the
 * socket takes them, one slice at a time, so a read of 64 KiB of `\n` (64 Ki replies, 64 MiB with
 * a 1 KiB greeting) never becomes more than a slice in memory; the rest stays a count of replies
 * owed. 64 KiB is about what one write to a socket takes, so a slice is rarely split, and it is
 * also the reused output buffer's size, which never has to grow.
 */
export const SLICE_BYTES = 64 * 1024;

/**
 * One per thread. {@linkcode handle} counts the replies a read asks for and writes the first slice
 * of them into {@linkcode output}, a buffer reused for every connection (or points it at the
 * connection's own reply bytes); {@linkcode next} writes the following slices as the socket takes
 * them. A reply is numbered only when it is encoded, so a number is never taken for a reply that
 * waits unbounded, and replies on one connection are numbered in the order its lines came.
 */
export class MessageHandler {
  /** The bytes to send after {@linkcode handle} or {@linkcode next}: valid until the next call. */
  output: Uint8Array;
  #scratch = new Uint8Array(SLICE_BYTES);
  #config: ServeConfig;
  #encoder: ReplyEncoder;
  #sliceBytes = SLICE_BYTES;
  /** Replies per slice in `message` numbering (each may take the encoder's most bytes). */
  #repliesPerSlice = 1;
  readonly #ledger: NumberLedger;
  readonly #waitMs: number;
  /** Set on a thread that may not block: connections wait here for a grant instead. */
  readonly #waitList: NumberWaitList | null;
  /** Positions the last `#reserve` took. */
  #reserved = 0;
  readonly #clock: CoarseClock;
  readonly #stats: Float64Array;

  /**
   * @param config The configuration to serve with; see {@linkcode configure}.
   * @param ledger The process's numbers.
   * @param stats This thread's stats row.
   * @param waitMs How long a connection waits for a block before it is refused (0: refused at once).
   * @param clock The thread's coarse clock, for the timeouts' timestamps.
   * @param mayBlock Whether the thread may block while it waits (`Atomics.wait`): a worker may;
   *   the process's main thread may not, since the grant it waits for comes through its own event
   *   loop. There `next` answers {@linkcode WAIT_FOR_NUMBERS} and the adapter parks the
   *   connection with {@linkcode whenNumbers}.
   */
  constructor(
    config: ServeConfig,
    ledger: NumberLedger,
    stats: Float64Array,
    waitMs = NUMBER_WAIT_MS,
    clock: CoarseClock = { now: 0 },
    mayBlock = true,
  ) {
    this.#clock = clock;
    this.#waitList = mayBlock || waitMs === 0 ? null : new NumberWaitList(ledger, waitMs);
    this.#config = config;
    this.#encoder = new ReplyEncoder(config.greeting);
    this.#ledger = ledger;
    this.#waitMs = waitMs;
    this.#stats = stats;
    this.output = this.#scratch;
    this.#sizeSlices();
  }

  /** The configuration in force. */
  get config(): ServeConfig {
    return this.#config;
  }

  /**
   * Switches to a new configuration. Connections that already have their number keep it; every
   * reply encoded from now on (replies owed included) uses the new greeting, framing and
   * numbering.
   *
   * @param config The new configuration.
   */
  configure(config: ServeConfig): void {
    if (config.greeting !== this.#config.greeting) {
      this.#encoder = new ReplyEncoder(config.greeting);
    }
    this.#config = config;
    this.#sizeSlices();
  }

  #sizeSlices(): void {
    // A slice never passes the connection's cap either, so a small cap holds whatever the
    // greeting; but it always holds one reply, or nothing could be sent.
    this.#sliceBytes = Math.min(SLICE_BYTES, this.#config.maxPendingReplyBytes);
    this.#repliesPerSlice = Math.max(1, Math.floor(this.#sliceBytes / this.#encoder.maxReplyBytes));
  }

  /**
   * Handles one read: {@linkcode receive}, then {@linkcode next}. For a connection whose socket
   * is ready to write.
   *
   * @param connection The connection the bytes came from.
   * @param chunk The bytes read; not kept after the call.
   * @returns Bytes of {@linkcode output} to send (0 when a line is still unfinished), or a
   *   negative `CLOSE_*` reason when the connection must be closed.
   */
  handle(connection: Connection, chunk: Uint8Array): number {
    const messages = this.receive(connection, chunk);
    if (messages < 0) return messages;
    return this.next(connection);
  }

  /**
   * Counts the replies one read asks for into the connection's replies owed, encoding nothing:
   * for a connection whose socket is not taking bytes.
   *
   * @param connection The connection the bytes came from.
   * @param chunk The bytes read; not kept after the call.
   * @returns How many messages the read completed, or {@linkcode CLOSE_LINE_TOO_LONG}.
   */
  receive(connection: Connection, chunk: Uint8Array): number {
    const stats = this.#stats;
    const now = this.#clock.now;
    stats[Stat.bytesIn]! += chunk.length;
    connection.heard = true;
    connection.lastActivityAt = now;
    let messages = 1;
    if (this.#config.framing === "line") {
      messages = scanLines(chunk, connection, this.#config.maxLineBytes);
      if (messages === LINE_TOO_LONG) {
        stats[Stat.closedLineTooLong]!++;
        return CLOSE_LINE_TOO_LONG;
      }
      // A line left unfinished starts its clock when it begins, not at each byte (slowloris).
      if (connection.pendingLineBytes === 0) connection.lineStartedAt = 0;
      else if (messages > 0 || connection.lineStartedAt === 0) connection.lineStartedAt = now;
    }
    stats[Stat.messages]! += messages;
    connection.owedReplies += messages;
    return messages;
  }

  /**
   * Numbers and encodes the next slice of the connection's replies owed into
   * {@linkcode output}: at most 64 KiB (or the cap, if smaller), and at least one reply.
   *
   * @param connection The connection.
   * @returns Bytes of {@linkcode output} to send (0 when nothing is owed),
   *   {@linkcode CLOSE_NUMBERS_UNAVAILABLE} (the replies owed are then dropped), or, on a thread
   *   that may not block, {@linkcode WAIT_FOR_NUMBERS}.
   */
  next(connection: Connection): number {
    const owed = connection.owedReplies;
    if (owed === 0) return 0;
    try {
      let replies: number;
      let length: number;
      if (this.#config.numberBy === "connection") {
        // The reply is encoded again from the connection's number each time rather than kept:
        // 18 bytes of reply cost a connection 80 bytes of heap for as long as it is held.
        if (connection.number === 0) {
          const waiting = this.#takeNumber(connection);
          if (waiting < 0) return this.#noNumber(connection, waiting);
        }
        const out = this.#scratch;
        const one = this.#encoder.write(out, 0, connection.number);
        // One reply a read is the common case (chunk framing): no division for it.
        replies = owed === 1 ? 1 : Math.min(owed, Math.max(1, Math.floor(this.#sliceBytes / one)));
        length = one * replies;
        // Copies double what is filled: a few calls into the runtime, not one a reply.
        for (let filled = one; filled < length; filled *= 2) {
          out.copyWithin(filled, 0, Math.min(filled, length - filled));
        }
        this.output = out;
      } else {
        const first = this.#reserve(Math.min(owed, this.#repliesPerSlice));
        if (first < 0) return this.#noNumber(connection, first);
        replies = this.#reserved;
        length = this.#encodeEach(first, replies);
      }
      connection.owedReplies = owed - replies;
      this.#stats[Stat.replies]! += replies;
      this.#stats[Stat.bytesOut]! += length;
      return length;
    } catch (error) {
      if (!(error instanceof NumbersUnavailableError)) throw error;
      connection.owedReplies = 0;
      this.#stats[Stat.closedNumbersUnavailable]!++;
      return CLOSE_NUMBERS_UNAVAILABLE;
    }
  }

  /**
   * Bytes of replies the connection is owed or has not had written, counting each owed reply at
   * the most a reply can take: what an adapter compares with `maxPendingReplyBytes`.
   *
   * @param connection The connection.
   * @returns The backlog in bytes.
   */
  backlogBytes(connection: Connection): number {
    return (connection.unsent?.length ?? 0) +
      connection.owedReplies * this.#encoder.maxReplyBytes;
  }

  /**
   * Parks a connection that {@linkcode next} answered {@linkcode WAIT_FOR_NUMBERS}: `retry` is
   * called once a block is granted (`expired` false: call `next` again) or once the connection has
   * waited `waitMs` in all (`expired` true: {@linkcode refuse} it). A connection is parked at most
   * once at a time: the adapter sends nothing on it and calls `next` for it only from `retry`.
   *
   * @param retry What the adapter does with the connection next.
   * @param deadline When the wait ends (from {@linkcode numbersDeadline}), for a connection parked
   *   again outside its retry (Deno's, which resumes a promise); by default `waitMs` from its first
   *   park.
   */
  whenNumbers(retry: NumbersRetry, deadline?: number): void {
    this.#waitList!.park(retry, deadline);
  }

  /** When a wait for numbers that begins now ends (see {@linkcode whenNumbers}). */
  numbersDeadline(): number {
    return this.#waitList!.deadlineFromNow();
  }

  /**
   * Refuses a connection whose wait for numbers is over: its replies owed are dropped and it is
   * counted as `closedNumbersUnavailable`.
   *
   * @returns The refusal, as {@linkcode next} returns it: the adapter closes the connection.
   */
  refuse(connection: Connection): number {
    return this.#noNumber(connection, REFUSE_NOW);
  }

  /** A `next` that found no number: waits (replies kept) or refuses (replies dropped). */
  #noNumber(connection: Connection, why: number): number {
    if (why === NONE_GRANTED) return WAIT_FOR_NUMBERS;
    connection.owedReplies = 0;
    this.#stats[Stat.closedNumbersUnavailable]!++;
    return CLOSE_NUMBERS_UNAVAILABLE;
  }

  /**
   * Numbers the connection: 0, or on a thread that may not block, `NONE_GRANTED` or `REFUSE_NOW`
   * when no position is granted (see `NumberLedger.reserveGranted`).
   */
  #takeNumber(connection: Connection): number {
    const position = this.#reserve(1);
    if (position < 0) return position;
    connection.number = this.#ledger.numberAt(position, this.#waitMs);
    this.#stats[Stat.lastNumber] = connection.number;
    return 0;
  }

  /**
   * Reserves up to `count` positions, how many in `#reserved`: all of them where the thread may
   * block (`numberAt` waits for their block), only granted ones where it may not
   * (`NumberLedger.reserveGranted`: negative when none is).
   */
  #reserve(count: number): number {
    const ledger = this.#ledger;
    if (this.#waitList === null) {
      this.#reserved = count;
      return ledger.reserve(count);
    }
    const first = ledger.reserveGranted(count);
    this.#reserved = ledger.reservedCount;
    return first;
  }

  #encodeEach(first: number, replies: number): number {
    // One atomic operation reserved the whole run of positions for this slice; a run may cross
    // from one leased block into the next, so each position is looked up (cached per block).
    const ledger = this.#ledger;
    const encoder = this.#encoder;
    const out = this.#scratch;
    let offset = 0;
    let n = 0;
    for (let i = 0; i < replies; i++) {
      n = ledger.numberAt(first + i, this.#waitMs);
      offset = encoder.write(out, offset, n);
    }
    this.#stats[Stat.lastNumber] = n;
    this.output = out;
    return offset;
  }
}
