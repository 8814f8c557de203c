/**
 * One load thread: its share of the connections, driven through a transport, with the reply
 * check and the latency histogram. Plain TypeScript; the runtime is in the transport.
 *
 * Every workload is the same loop with a different rule for what follows a reply:
 * `closed` sends the next request, `pipelined` sends the next batch of `depth` once the last
 * batch is answered,
 * `connect` closes and connects again, `idle` holds the connection. A request's latency runs
 * from its write (for `connect`: from the connect call) to the end of its reply line.
 *
 * @module
 */

import { LatencyHistogram } from "./latency_histogram.ts";
import { LoadConnection } from "./load_connection.ts";
import type { LoadConfig } from "./load_options.ts";
import { LoadStat } from "./load_stats.ts";
import { type CheckFigures, ReplyChecker } from "./reply_checker.ts";
import { ReplyParser } from "./reply_parser.ts";
import type { MakeTransport, Transport, TransportEvents } from "./transports/mod.ts";

/** Connects in progress per thread at most, so a burst of thousands does not overflow backlogs. */
const MAX_CONNECTING = 256;
/** Hold workload: asks after the hold unanswered at once, per thread (see `#pumpAsks`). */
const ASK_WINDOW = 1000;
const FIRST_BACKOFF_MS = 10;
const MAX_BACKOFF_MS = 1000;

/** What the hold workload adds to a thread's plan (see load/run_hold.ts). */
export interface HoldPlan {
  /** New connections per second this thread may open (0: as fast as handshakes finish). */
  ratePerSecond: number;
  /** Handshakes in flight at most. */
  maxConnecting: number;
  /** Server addresses to spread the connections over, round robin by slot. */
  targets: string[];
  /** Local addresses to connect from, round robin by slot; empty lets the kernel choose. */
  sources: string[];
  /** Where this thread's slots start in the round robin, so processes spread alike. */
  offset: number;
}

/** What one thread is asked to do. */
export interface ThreadPlan {
  /** The hold workload's pacing and addresses; absent for the other workloads. */
  hold?: HoldPlan;
  config: LoadConfig;
  /** Index of the thread. */
  thread: number;
  /** This thread's connections. */
  connections: number;
  /** This thread's share of `config.count`, or `null` for no limit. */
  count: number | null;
}

/** Why a run ended. */
export type StoppedBy = "duration" | "count" | "signal";

/** What one thread did, in a form that crosses threads. */
export interface ThreadResult {
  transport: string;
  requests: number;
  replies: number;
  /** Connections established. */
  connects: number;
  /** Connect workload: connect-send-reply-close cycles completed. */
  completed: number;
  /** Requests still unanswered when the run ended. */
  unanswered: number;
  errors: Record<string, number>;
  histogram: { counts: Float64Array; count: number; min: number; max: number; sum: number };
  check: CheckFigures;
  pages: Map<number, Uint32Array>;
  /** From the start to the last reply (or the stop, when that came later), in ms. */
  activeMs: number;
  stoppedBy: StoppedBy;
}

/** Drives one thread's connections; see the module doc. */
export class LoadEngine implements TransportEvents {
  readonly #config: LoadConfig;
  readonly #stats: Float64Array;
  readonly #transport: Transport;
  readonly #parser: ReplyParser;
  readonly #checker = new ReplyChecker();
  readonly #histogram = new LatencyHistogram();
  readonly #slots: LoadConnection[] = [];
  readonly #waiting: LoadConnection[] = [];
  /** Index of the next connection to open in `#waiting` (a queue without O(n) shifts). */
  #waitingHead = 0;
  readonly #batches: Uint8Array[] = [];
  readonly #errors = new Map<string, number>();
  #connecting = 0;
  #live = 0;
  #finished = 0;
  #held = 0;
  #remaining: number;
  #requests = 0;
  #replies = 0;
  #connects = 0;
  #completed = 0;
  #unanswered = 0;
  #stopping = false;
  #stoppedBy: StoppedBy = "duration";
  #startedAt = 0;
  #stoppedAt = 0;
  #lastReplyAt = 0;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #sweeper: ReturnType<typeof setInterval> | null = null;
  #onHeld: () => void = () => {};
  readonly #maxConnecting: number;
  readonly #ratePerSecond: number;
  #tokens = 0;
  #refilledAt = 0;
  #refill: ReturnType<typeof setTimeout> | null = null;
  #asked = 0;
  #answeredAgain = 0;
  #askLost = 0;
  #asksInFlight = 0;
  readonly #askQueue: LoadConnection[] = [];
  #askHead = 0;
  #onAnswered: () => void = () => {};
  #resolve: ((result: ThreadResult) => void) | null = null;

  /**
   * @param plan The thread's share of the run.
   * @param stats The thread's row of live figures.
   * @param makeTransport The runtime's transport.
   */
  constructor(plan: ThreadPlan, stats: Float64Array, makeTransport: MakeTransport) {
    const config = plan.config;
    this.#config = config;
    this.#stats = stats;
    this.#remaining = plan.count ?? Infinity;
    this.#parser = new ReplyParser(config.greeting);
    const message = config.message;
    // Requests go out as slices of one constant batch: `depth` copies of the message.
    const batch = new Uint8Array(message.length * config.depth);
    for (let i = 0; i < config.depth; i++) batch.set(message, i * message.length);
    for (let n = 0; n <= config.depth; n++) {
      this.#batches.push(batch.subarray(0, n * message.length));
    }
    const hold = plan.hold;
    this.#maxConnecting = hold?.maxConnecting ?? MAX_CONNECTING;
    this.#ratePerSecond = hold?.ratePerSecond ?? 0;
    for (let slot = 0; slot < plan.connections; slot++) {
      const connection = new LoadConnection(slot, config.depth);
      if (hold !== undefined) {
        const at = hold.offset + slot;
        connection.target = hold.targets[at % hold.targets.length] ?? null;
        if (hold.sources.length > 0) {
          connection.localAddress = hold.sources[at % hold.sources.length]!;
        }
      }
      this.#slots.push(connection);
    }
    // Deno's transport reads into its own buffer; size it for the replies a read may carry.
    const readBytes = Math.min(64 * 1024, Math.max(1024, config.depth * 32));
    this.#transport = makeTransport(
      { host: config.host, port: config.port, source: config.source, readBytes },
      this,
    );
  }

  /**
   * Runs until the duration is over, the count is done or {@linkcode LoadEngine.stop}.
   *
   * @param onHeld Idle workload: called once every connection holds its reply.
   * @returns The thread's figures.
   */
  run(onHeld: () => void = () => {}): Promise<ThreadResult> {
    this.#onHeld = onHeld;
    this.#startedAt = performance.now();
    const done = new Promise<ThreadResult>((resolve) => (this.#resolve = resolve));
    this.#later(this.#config.durationMs, () => this.stop("duration"));
    const every = Math.max(10, Math.min(250, this.#config.timeoutMs / 4));
    this.#sweeper = setInterval(() => this.#sweep(), every);
    for (const connection of this.#slots) this.#schedule(connection);
    this.#checkDone();
    return done;
  }

  /**
   * Stops sending; replies in flight get up to `timeoutMs`, then every connection is closed.
   *
   * @param reason Why, for the report.
   */
  stop(reason: StoppedBy): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#stoppedBy = reason;
    this.#stoppedAt = performance.now();
    this.#waiting.length = 0;
    this.#waitingHead = 0;
    for (const connection of this.#slots) {
      if (connection.open && connection.inFlight === 0) this.#finish(connection);
    }
    this.#later(this.#config.timeoutMs, () => this.#forceEnd());
    this.#checkDone();
  }

  #schedule(connection: LoadConnection): void {
    this.#waiting.push(connection);
    this.#pump();
  }

  #pump(): void {
    const paced = this.#ratePerSecond > 0;
    if (paced) this.#topUp();
    while (
      this.#connecting < this.#maxConnecting && this.#waitingHead < this.#waiting.length &&
      !this.#stopping
    ) {
      if (paced) {
        if (this.#tokens < 1) return this.#pumpLater();
        this.#tokens--;
      }
      // A head index, not shift(): shift() moves the whole queue on some engines, and a hold
      // process queues 20,000 at its start.
      this.#open(this.#waiting[this.#waitingHead++]!);
      if (this.#waitingHead > 1024 && this.#waitingHead * 2 > this.#waiting.length) {
        this.#waiting.splice(0, this.#waitingHead);
        this.#waitingHead = 0;
      }
    }
  }

  /** A token bucket: `rate` tokens a second, at most a tenth of a second's worth saved up. */
  #topUp(): void {
    const now = performance.now();
    const rate = this.#ratePerSecond;
    if (this.#refilledAt === 0) this.#refilledAt = now;
    this.#tokens = Math.min(
      Math.max(1, rate / 10),
      this.#tokens + ((now - this.#refilledAt) * rate) / 1000,
    );
    this.#refilledAt = now;
  }

  #pumpLater(): void {
    if (this.#refill !== null) return;
    const waitMs = Math.max(1, Math.ceil(((1 - this.#tokens) * 1000) / this.#ratePerSecond));
    this.#refill = setTimeout(() => {
      this.#refill = null;
      this.#pump();
    }, waitMs);
  }

  /**
   * Hold workload: sends one more request on every held connection; `onAnswered` is called once
   * every one of them has answered (replies are checked as ever). Connections lost meanwhile
   * count as errors and never answer, so the caller also bounds the wait.
   *
   * @param onAnswered Called when every asked connection has answered.
   * @returns How many connections were asked.
   */
  askAgain(onAnswered: () => void): number {
    this.#onAnswered = onAnswered;
    for (const connection of this.#slots) {
      if (!connection.open || connection.closing || !connection.held) continue;
      connection.asked = true;
      this.#asked++;
      this.#askQueue.push(connection);
    }
    if (this.#asked === 0) onAnswered();
    else this.#pumpAsks();
    return this.#asked;
  }

  /**
   * Sends the queued asks, at most {@linkcode ASK_WINDOW} unanswered at once: a million messages
   * sent at once would sit in a million socket buffers, a page each against net.ipv4.tcp_mem
   * (575,802 pages here), and the kernel drops what passes its limit.
   */
  #pumpAsks(): void {
    while (this.#asksInFlight < ASK_WINDOW && this.#askHead < this.#askQueue.length) {
      const connection = this.#askQueue[this.#askHead++]!;
      if (!connection.open || connection.closing) {
        this.#askLost++; // its close counted the error
        continue;
      }
      connection.askPending = true;
      this.#asksInFlight++;
      this.#send(connection, 1);
    }
    this.#checkAnswered();
  }

  #checkAnswered(): void {
    if (this.#asked > 0 && this.#answeredAgain + this.#askLost === this.#asked) {
      const done = this.#onAnswered;
      this.#onAnswered = () => {};
      done();
    }
  }

  /** Errors so far, by kind. */
  errorCounts(): Record<string, number> {
    return Object.fromEntries(this.#errors);
  }

  /** Hold workload: connections asked again, and those that answered. */
  get again(): { asked: number; answered: number; lost: number } {
    return { asked: this.#asked, answered: this.#answeredAgain, lost: this.#askLost };
  }

  #open(connection: LoadConnection): void {
    if (this.#stopping || connection.finished) return;
    if (this.#remaining <= 0) {
      this.#markFinished(connection);
      this.#checkDone();
      return;
    }
    // A connect-per-request takes its request from the count before it connects.
    if (this.#config.workload === "connect") this.#remaining--;
    connection.reset();
    connection.connectStartedAt = performance.now();
    this.#connecting++;
    this.#live++;
    this.#transport.connect(connection);
  }

  opened(connection: LoadConnection): void {
    // On loopback the kernel completes the handshake before the server accepts: a connection is
    // "open" while it still waits in the listener's accept queue. The hold workload therefore
    // counts it in flight until its first reply, so --in-flight bounds what waits in the accept
    // queues and a burst never overflows them (an overflow drops the handshake's last ACK, and
    // the connection stalls for the 1 s, 3 s... of SYN-ACK retransmits, or fails).
    if (this.#config.workload !== "hold") {
      this.#connecting--;
      this.#pump();
    }
    connection.open = true;
    connection.backoffMs = 0;
    connection.lastActivity = performance.now();
    this.#connects++;
    this.#stats[LoadStat.connects]!++;
    this.#stats[LoadStat.open]!++;
    if (this.#stopping) return this.#finish(connection);
    switch (this.#config.workload) {
      case "connect":
        connection.stamps[0] = connection.connectStartedAt;
        connection.inFlight = 1;
        this.#requests++;
        this.#stats[LoadStat.requests]!++;
        if (this.#config.message.length > 0) {
          this.#transport.write(connection, this.#batches[1]!);
        }
        break;
      case "pipelined":
        this.#send(connection, this.#config.depth);
        break;
      default:
        this.#send(connection, 1);
    }
  }

  #send(connection: LoadConnection, wanted: number): void {
    const n = Math.min(wanted, this.#remaining);
    if (n <= 0) {
      if (connection.inFlight === 0) this.#finish(connection);
      return;
    }
    this.#remaining -= n;
    const stamps = connection.stamps;
    const capacity = stamps.length;
    const now = performance.now();
    // The reply timeout runs from the request, not from whatever came last: a held connection
    // asked again after a long hold must not count as timed out the moment it is asked.
    if (connection.inFlight === 0) connection.lastActivity = now;
    let at = connection.stampHead + connection.inFlight;
    for (let i = 0; i < n; i++, at++) stamps[at % capacity] = now;
    connection.inFlight += n;
    this.#requests += n;
    this.#stats[LoadStat.requests]! += n;
    this.#transport.write(connection, this.#batches[n]!);
  }

  received(connection: LoadConnection, chunk: Uint8Array): void {
    const now = performance.now();
    connection.lastActivity = now;
    const lines = this.#parser.parse(connection, chunk);
    if (lines === 0) return;
    const out = this.#parser.out;
    const stamps = connection.stamps;
    const capacity = stamps.length;
    const histogram = this.#histogram;
    const checker = this.#checker;
    let unsolicited = 0;
    for (let i = 0; i < lines; i++) {
      if (connection.inFlight > 0) {
        histogram.record((now - stamps[connection.stampHead]!) * 1e6);
        connection.stampHead = (connection.stampHead + 1) % capacity;
        connection.inFlight--;
      } else unsolicited++;
      checker.observe(connection, out[i]!);
    }
    if (unsolicited > 0) this.#error("unsolicited_reply", unsolicited);
    this.#replies += lines;
    this.#stats[LoadStat.replies]! += lines;
    this.#lastReplyAt = now;
    if (connection.closing) return;
    switch (this.#config.workload) {
      case "closed":
        if (connection.inFlight > 0) return;
        if (this.#stopping) this.#finish(connection);
        else this.#send(connection, 1);
        break;
      case "pipelined":
        // As redis-benchmark -P: the next batch of `depth` goes out once the last is answered,
        // so the server reads whole batches, not the few lines a partial read freed up.
        if (connection.inFlight > 0) return;
        if (this.#stopping) this.#finish(connection);
        else this.#send(connection, this.#config.depth);
        break;
      case "connect":
        if (connection.inFlight > 0) return;
        this.#completed++;
        this.#close(connection);
        break;
      case "hold":
        if (connection.inFlight > 0) return;
        if (connection.asked) {
          if (!connection.askPending) return;
          connection.askPending = false;
          this.#asksInFlight--;
          this.#answeredAgain++;
          return this.#pumpAsks();
        }
        if (connection.held) return;
        this.#connecting--;
        this.#pump();
        if (this.#stopping) return this.#finish(connection);
        connection.held = true;
        this.#stats[LoadStat.held]!++;
        if (++this.#held === this.#slots.length) this.#onHeld();
        break;
      case "idle":
        if (connection.inFlight > 0 || connection.held) return;
        if (this.#stopping) return this.#finish(connection);
        connection.held = true;
        this.#stats[LoadStat.held]!++;
        if (++this.#held === this.#slots.length) this.#onHeld();
        break;
    }
  }

  closed(connection: LoadConnection): void {
    if (this.#config.workload === "hold" && !connection.held) {
      this.#connecting--;
      this.#pump();
    }
    if (connection.askPending) {
      connection.askPending = false;
      this.#asksInFlight--;
      this.#askLost++;
      this.#pumpAsks();
    }
    connection.open = false;
    this.#live--;
    this.#stats[LoadStat.open]!--;
    if (connection.held) this.#stats[LoadStat.held]!--;
    const workload = this.#config.workload;
    if (!connection.closing) {
      if (connection.error !== null) this.#error(connection.error);
      else if (connection.inFlight > 0) this.#error("closed_before_reply");
      else if (workload !== "connect" && !this.#stopping) this.#error("closed_by_server");
    }
    if (this.#stopping) this.#unanswered += connection.inFlight;
    connection.inFlight = 0;
    // A held connection that is lost stays lost: reconnecting would hold a new connection in its
    // place and hide the loss (its error is counted above).
    if (workload === "hold" && connection.held) this.#markFinished(connection);
    if (this.#stopping || connection.finished) return this.#checkDone();
    const clean = connection.closing && connection.error === null;
    if (workload === "connect" && clean) return this.#open(connection);
    this.#retryLater(connection);
  }

  failed(connection: LoadConnection, code: string): void {
    this.#connecting--;
    this.#live--;
    this.#error(code);
    if (this.#config.workload === "connect") this.#remaining++;
    this.#pump();
    if (this.#stopping) return this.#checkDone();
    this.#retryLater(connection);
  }

  #retryLater(connection: LoadConnection): void {
    connection.backoffMs = Math.min(
      MAX_BACKOFF_MS,
      Math.max(FIRST_BACKOFF_MS, connection.backoffMs * 2),
    );
    this.#later(connection.backoffMs, () => this.#schedule(connection));
  }

  #later(ms: number, task: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      task();
    }, ms);
    this.#timers.add(timer);
  }

  #sweep(): void {
    const now = performance.now();
    const timeout = this.#config.timeoutMs;
    for (const connection of this.#slots) {
      if (
        connection.open && !connection.closing && connection.inFlight > 0 &&
        now - connection.lastActivity > timeout
      ) {
        this.#error("reply_timeout", connection.inFlight);
        connection.inFlight = 0;
        this.#close(connection);
      }
    }
  }

  #close(connection: LoadConnection): void {
    if (connection.closing) return;
    connection.closing = true;
    this.#transport.close(connection);
  }

  #markFinished(connection: LoadConnection): void {
    if (connection.finished) return;
    connection.finished = true;
    this.#finished++;
  }

  #finish(connection: LoadConnection): void {
    this.#markFinished(connection);
    this.#close(connection);
  }

  #error(kind: string, count = 1): void {
    this.#errors.set(kind, (this.#errors.get(kind) ?? 0) + count);
    this.#stats[LoadStat.errors]! += count;
  }

  #checkDone(): void {
    if (this.#live > 0) return;
    if (!this.#stopping && this.#finished < this.#slots.length) return;
    if (!this.#stopping) this.#stoppedBy = "count";
    this.#complete();
  }

  #forceEnd(): void {
    for (const connection of this.#slots) {
      if (!connection.open) continue;
      this.#unanswered += connection.inFlight;
      connection.inFlight = 0;
      this.#finish(connection);
    }
    this.#complete();
  }

  #complete(): void {
    const resolve = this.#resolve;
    if (resolve === null) return;
    this.#resolve = null;
    // Nothing may connect or send after the figures are taken.
    this.#stopping = true;
    this.#waiting.length = 0;
    this.#waitingHead = 0;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    if (this.#refill !== null) clearTimeout(this.#refill);
    resolve(this.snapshot());
  }

  /**
   * The thread's figures so far, without stopping (the hold workload reports while it still
   * holds every connection, so closing a million sockets is left to the process's exit).
   *
   * @returns The figures.
   */
  snapshot(): ThreadResult {
    const end = Math.max(this.#lastReplyAt, this.#stoppedAt);
    const histogram = this.#histogram;
    return {
      transport: this.#transport.name,
      requests: this.#requests,
      replies: this.#replies,
      connects: this.#connects,
      completed: this.#completed,
      unanswered: this.#unanswered,
      errors: Object.fromEntries(this.#errors),
      histogram: {
        counts: histogram.counts,
        count: histogram.count,
        min: histogram.min,
        max: histogram.max,
        sum: histogram.sum,
      },
      check: this.#checker.result(),
      pages: this.#checker.seen.pages,
      activeMs: Math.max(0, end - this.#startedAt),
      stoppedBy: this.#stoppedBy,
    };
  }
}
