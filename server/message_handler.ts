/**
 * Turns the bytes a connection delivers into reply bytes: framing, numbering and encoding in one
 * place, shared by the Bun and Deno adapters.
 *
 * @module
 */

import type { ServeConfig } from "./config.ts";
import type { Connection } from "./connection.ts";
import { LINE_TOO_LONG, scanLines } from "./line_scanner.ts";
import { ReplyEncoder } from "./reply_encoder.ts";
import { type NumberLedger, NumbersUnavailableError } from "./lease/number_ledger.ts";
import type { CoarseClock } from "./coarse_clock.ts";
import { Stat } from "./thread_stats.ts";

/** Why {@linkcode MessageHandler.handle} asks for a connection to be closed. */
export const CLOSE_LINE_TOO_LONG = -1;
// No leased number was available in time (the number source is down or used up). Not exported:
// an adapter tells only CLOSE_LINE_TOO_LONG apart and closes cleanly for any other reason.
const CLOSE_NUMBERS_UNAVAILABLE = -2;

/**
 * How long a thread may wait for its process's next block before it refuses the connection.
 * Blocks are leased ahead, so this wait happens only when a burst outruns the leases in flight
 * (the keeper then leases more each time) or the source is down, and then only once until a
 * block arrives (see NumberLedger): a healthy but briefly slow source delays a burst rather than
 * refusing it, and a source that is down costs each thread one wait, not one per client.
 */
export const NUMBER_WAIT_MS = 1000;

const INITIAL_OUTPUT_BYTES = 64 * 1024;

/**
 * One per thread. {@linkcode handle} writes the replies for a read into {@linkcode output}, a
 * buffer reused for every read (or points it at the connection's own reply bytes), and returns
 * how many bytes to send from it.
 */
export class MessageHandler {
  /** The bytes to send after {@linkcode handle}: valid until the next call. */
  output: Uint8Array;
  #scratch = new Uint8Array(INITIAL_OUTPUT_BYTES);
  #config: ServeConfig;
  #encoder: ReplyEncoder;
  readonly #ledger: NumberLedger;
  readonly #waitMs: number;
  readonly #clock: CoarseClock;
  readonly #stats: Float64Array;

  /**
   * @param config The configuration to serve with; see {@linkcode configure}.
   * @param ledger The process's numbers.
   * @param stats This thread's stats row.
   * @param waitMs How long to wait for a block (0 on a main thread, which may not wait).
   * @param clock The thread's coarse clock, for the timeouts' timestamps.
   */
  constructor(
    config: ServeConfig,
    ledger: NumberLedger,
    stats: Float64Array,
    waitMs = NUMBER_WAIT_MS,
    clock: CoarseClock = { now: 0 },
  ) {
    this.#clock = clock;
    this.#config = config;
    this.#encoder = new ReplyEncoder(config.greeting);
    this.#ledger = ledger;
    this.#waitMs = waitMs;
    this.#stats = stats;
    this.output = this.#scratch;
  }

  /** The configuration in force. */
  get config(): ServeConfig {
    return this.#config;
  }

  /**
   * Switches to a new configuration. Connections that already have their number keep their
   * reply; every reply encoded from now on uses the new greeting, framing and numbering.
   *
   * @param config The new configuration.
   */
  configure(config: ServeConfig): void {
    if (config.greeting !== this.#config.greeting) {
      this.#encoder = new ReplyEncoder(config.greeting);
    }
    this.#config = config;
  }

  /**
   * Handles one read.
   *
   * @param connection The connection the bytes came from.
   * @param chunk The bytes read; not kept after the call.
   * @returns Bytes of {@linkcode output} to send (0 when a line is still unfinished), or a
   *   negative `CLOSE_*` reason when the connection must be closed.
   */
  handle(connection: Connection, chunk: Uint8Array): number {
    const stats = this.#stats;
    const now = this.#clock.now;
    stats[Stat.bytesIn]! += chunk.length;
    connection.lastReadAt = now;
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
      if (messages === 0) return 0;
    }
    stats[Stat.messages]! += messages;
    try {
      const length = this.#config.numberBy === "connection"
        ? this.#repeatConnectionReply(connection, messages)
        : this.#numberEachMessage(messages);
      stats[Stat.replies]! += messages;
      stats[Stat.bytesOut]! += length;
      return length;
    } catch (error) {
      if (!(error instanceof NumbersUnavailableError)) throw error;
      stats[Stat.closedNumbersUnavailable]!++;
      return CLOSE_NUMBERS_UNAVAILABLE;
    }
  }

  #repeatConnectionReply(connection: Connection, messages: number): number {
    let reply = connection.reply;
    if (reply === null) {
      connection.number = this.#ledger.numberAt(this.#ledger.reserve(1), this.#waitMs);
      this.#stats[Stat.lastNumber] = connection.number;
      reply = connection.reply = this.#encoder.encode(connection.number);
    }
    if (messages === 1) {
      this.output = reply;
      return reply.length;
    }
    const total = reply.length * messages;
    const out = this.#reserve(total);
    for (let offset = 0; offset < total; offset += reply.length) out.set(reply, offset);
    return total;
  }

  #numberEachMessage(messages: number): number {
    // One atomic operation reserves the whole run of positions for this read; a run may cross
    // from one leased block into the next, so each position is looked up (cached per block).
    const ledger = this.#ledger;
    const first = ledger.reserve(messages);
    const encoder = this.#encoder;
    const out = this.#reserve(encoder.maxReplyBytes * messages);
    let offset = 0;
    let n = 0;
    for (let i = 0; i < messages; i++) {
      n = ledger.numberAt(first + i, this.#waitMs);
      offset = encoder.write(out, offset, n);
    }
    this.#stats[Stat.lastNumber] = n;
    return offset;
  }

  #reserve(bytes: number): Uint8Array {
    if (this.#scratch.length < bytes) {
      let size = this.#scratch.length;
      while (size < bytes) size *= 2;
      this.#scratch = new Uint8Array(size);
    }
    this.output = this.#scratch;
    return this.#scratch;
  }
}
