/**
 * The Deno adapter: one `Deno.listen({ reusePort: true })` per thread (needs `--unstable-net`)
 * and one read loop per connection.
 *
 * Each loop awaits its write before it reads again, so a client that never reads stops being
 * read once the kernel's buffers are full. Replies are encoded one slice at a time, the next only
 * once the last is written, so a read that asks for many replies (64 KiB of `\n` is 64 Ki replies,
 * 64 MiB with a 1 KiB greeting) holds one slice, never all of them. A connection reads into a
 * small region of a slab shared by the thread's connections, and into a buffer of its own only
 * while its reads fill the region, so idle connections stay cheap (see _deno_buffers.ts).
 *
 * @module
 */

import { Connection } from "../numbering/connection.ts";
import {
  type MessageHandler,
  SLICE_BYTES,
  WAIT_FOR_NUMBERS,
} from "../numbering/message_handler.ts";
import { type ConnectionGate, PROXY_CLOSE } from "../limits/connection_gate.ts";
import type { CoarseClock } from "../common/clock.ts";
import {
  awaitsFirstBytes,
  FIRST_REQUEST_GRACE_MS,
  fullSweepEveryMs,
  overstayed,
  SWEEP_EVERY_MS,
} from "../limits/timeouts.ts";
import type { ServeConfig } from "../config/resolve_config.ts";
import { monotonicNow } from "../common/clock.ts";
import { Stat } from "../threads/thread_stats.ts";
import { AddressInUseError } from "../host/address_in_use_error.ts";
import type { ListenOptions, ThreadListener } from "./thread_listener.ts";
import { serverNameCheck } from "../server_names.ts";
import { listenWithDescriptor } from "./_deno_listener_fd.ts";
import type { ListenTurns } from "../common/listen_turns.ts";
import { quietListener } from "./_quiet_listener.ts";
import { ReadRegions, REGION_BYTES, WriteArena, type WriteSlab } from "./_deno_buffers.ts";

const MAX_READ_BYTES = 64 * 1024;
/** A connection's own read buffer starts here, once its reads fill its shared region. */
const OWN_READ_BYTES = 4096;
/** Reads that would have fit the region, in a row, before a connection gives its buffer up. */
const SMALL_READS_TO_SHRINK = 8;
const ACCEPT_BACKOFF_MS = 10;
/**
 * Deno 2.9's listenTls takes an SNI resolver only under this private symbol (denoland/deno#23686;
 * the public `resolveCertificate` is denoland/deno#35179, not released): it is given the name the
 * client asked for and returns the certificate and key, or throws to abort the handshake.
 */
const SNI_RESOLVER = Symbol.for("unstableSniResolver");
/** The resolver's refusal; the first read of that connection fails with it in its message. */
const NAME_REFUSED = "tallyho: the certificate does not cover the server name asked for";

interface Tracked {
  conn: Deno.Conn;
  state: Connection;
  /** Whether a write is in flight; a drain lets it finish before closing. */
  writing: boolean;
  /** Closed by the sweep or the drain's deadline: a wait for numbers ends with nothing sent. */
  cut: boolean;
  /** Parked for numbers (a thread that may not block): the sweep's idle rule passes it by. */
  waiting: boolean;
}

/** `#afterWait` for a connection cut while it waited: the read loop ends. */
const CUT = -1;

class DenoThreadListener implements ThreadListener {
  readonly runtime = "deno";
  readonly port: number;
  #listener: Deno.Listener | null;
  /** Each open listener's descriptor, where it was found (see _deno_listener_fd.ts). */
  readonly #descriptors = new WeakMap<Deno.Listener, number>();
  readonly #listenTurns: ListenTurns | undefined;
  readonly #host: string;
  #tls: { cert: string; key: string } | null;
  readonly #handler: MessageHandler;
  readonly #stats: Float64Array;
  readonly #open = new Set<Tracked>();
  /** Connections that have not sent their first bytes yet (see the sweep). */
  readonly #unheard = new Set<Tracked>();
  #fullSweepAt = 0;
  readonly #gate: ConnectionGate;
  readonly #clock: CoarseClock;
  readonly #sweeper: ReturnType<typeof setInterval>;
  readonly #regions = new ReadRegions();
  readonly #arena = new WriteArena();
  #draining = false;

  constructor({ host, port, handler, stats, gate, clock, tls, listenTurns }: ListenOptions) {
    this.#listenTurns = listenTurns;
    this.#handler = handler;
    this.#stats = stats;
    this.#host = host;
    this.#gate = gate;
    this.#clock = clock;
    this.#tls = tls ?? null;
    try {
      this.#listener = this.#bind(port);
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        throw new AddressInUseError(`Cannot listen on ${host}:${port}: the address is in use`);
      }
      throw error;
    }
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_EVERY_MS);
    this.#acceptLoop(this.#listener);
  }

  pause(): void {
    if (this.#listener !== null) this.#close(this.#listener); // its accept loop ends
    this.#listener = null;
  }

  resume(): void {
    if (this.#listener !== null || this.#draining) return;
    this.#listener = this.#bind(this.port);
    this.#acceptLoop(this.#listener);
  }

  setTls(tls: { cert: string; key: string } | null): void {
    this.#tls = tls;
    if (this.#listener === null || this.#draining) return; // paused: resume() binds with it
    // The new socket joins the port's SO_REUSEPORT group before the old one leaves it.
    const old = this.#listener;
    this.#listener = this.#bind(this.port);
    this.#acceptLoop(this.#listener);
    this.#close(old); // its accept loop ends with BadResource
  }

  /**
   * Closes a listener while the port's other listeners stay (an upgrade's new tree, the other
   * threads): quieted first where its descriptor is known, so that a handshake completing in
   * that moment is not reset (see _quiet_listener.ts).
   */
  #close(listener: Deno.Listener): void {
    quietListener(this.#descriptors.get(listener) ?? -1);
    listener.close();
  }

  #bind(port: number): Deno.Listener {
    const options = { hostname: this.#host, port, reusePort: true, transport: "tcp" } as const;
    // Deno.listenTls (rustls) accepts before the handshake; the first read completes it, so an
    // unfinished handshake is bounded by the first-message timeout like a silent client.
    if (this.#tls === null) return this.#withDescriptor(() => Deno.listen(options));
    const tls = this.#tls;
    const accepts = serverNameCheck(tls.cert);
    // A client that asks for a name the certificate does not cover has its handshake aborted
    // (an alert, then FIN) before anything is read; one that sends no name is served.
    const resolve = (name: string) => {
      if (name && !accepts(name)) throw new Error(NAME_REFUSED);
      return tls;
    };
    const withResolver = { ...options, ...tls, [SNI_RESOLVER]: resolve };
    return this.#withDescriptor(() => Deno.listenTls(withResolver));
  }

  /** Opens a listener with `listen` and keeps its descriptor, for {@linkcode #close}. */
  #withDescriptor(listen: () => Deno.Listener): Deno.Listener {
    const { listener, fd } = listenWithDescriptor(this.#listenTurns, listen);
    if (fd >= 0) this.#descriptors.set(listener, fd);
    return listener;
  }

  #sweep(): void {
    const now = this.#clock.now;
    const config = this.#handler.config;
    if (now - this.#fullSweepAt >= fullSweepEveryMs(config.idleTimeoutMs)) {
      this.#fullSweepAt = now;
      for (const tracked of this.#open) this.#closeIfOverstayed(tracked, now, config);
    }
    // Every sweep, only the connections that have not spoken yet (see bun_listener.ts).
    for (const tracked of this.#unheard) {
      if (tracked.state.closing || !awaitsFirstBytes(tracked.state)) this.#unheard.delete(tracked);
      else this.#closeIfOverstayed(tracked, now, config);
    }
  }

  #closeIfOverstayed(tracked: Tracked, now: number, config: ServeConfig): void {
    // Waiting for numbers is the server's wait, bounded by the handler's, not the client's.
    if (tracked.waiting) return;
    const reason = overstayed(tracked.state, now, config);
    if (reason < 0 || tracked.state.closing) return;
    this.#stats[reason]!++;
    tracked.state.closing = true;
    tracked.cut = true;
    closeQuietly(tracked.conn); // the pending read or write rejects and the loop ends
  }

  async #acceptLoop(listener: Deno.Listener): Promise<void> {
    while (!this.#draining) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (this.#draining || error instanceof Deno.errors.BadResource) return;
        // Deno 2.9's accept() also rejects, with NotConnected (ENOTCONN from reading the peer's
        // address), for a connection its peer reset while it waited in the queue; that ends only
        // that connection, never the loop. Anything else (EMFILE: out of descriptors) backs off
        // briefly so the loop does not spin while the table is full. With the PROXY protocol on,
        // such a reset is counted as Bun counts one before its open handler ran: as a balancer's
        // health check (HAProxy resets each check at once; most land here on Deno).
        const gone = isPeerGone(error);
        if (gone && this.#handler.config.proxyProtocol) this.#gate.peerError(undefined);
        else this.#stats[Stat.acceptErrors]!++;
        if (!gone) await sleep(ACCEPT_BACKOFF_MS);
        continue;
      }
      this.#serve(conn);
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const stats = this.#stats;
    const handler = this.#handler;
    const tracked: Tracked = {
      conn,
      state: new Connection(),
      writing: false,
      cut: false,
      waiting: false,
    };
    const remote = conn.remoteAddr as Deno.NetAddr;
    if (!this.#gate.admit(tracked.state, remote.hostname, this.#clock.now)) {
      closeQuietly(conn); // refused: closed at once, counted by the gate
      return;
    }
    this.#open.add(tracked);
    this.#unheard.add(tracked);
    stats[Stat.connectionsAccepted]!++;
    stats[Stat.connectionsActive]!++;
    const region = this.#regions.take();
    let buffer = region;
    let smallReads = 0;
    try {
      for (;;) {
        const read = await conn.read(buffer);
        if (read === null) break;
        // Draining and our FIN sent: what the client still sends is read and dropped (a close
        // with unread data would reset the connection) until it closes its side.
        if (tracked.state.closing) continue;
        let chunk = buffer.subarray(0, read);
        if (tracked.state.extra !== null && tracked.state.extra.proxyPhase !== 0) {
          const skip = this.#gate.proxyData(tracked.state, chunk, this.#clock.now);
          if (skip === PROXY_CLOSE) break;
          if (skip < 0 || skip === read) continue;
          if (skip > 0) chunk = chunk.subarray(skip);
        }
        let length = handler.handle(tracked.state, chunk);
        // `next` runs right after the await, in the same task as the copy below: the handler's
        // output is shared by the thread's connections.
        let deadline = 0;
        while (length === WAIT_FOR_NUMBERS) {
          deadline ||= handler.numbersDeadline();
          length = this.#afterWait(tracked, await this.#numbersCame(tracked, deadline));
        }
        tracked.writing = false;
        if (length > 0) {
          tracked.writing = true;
          // A backlog of several slices is copied through one buffer of its own, dropped when
          // the backlog is written. A copy per slice would turn every slice the kernel takes
          // before a non-reading client's window closes into garbage, which no collection
          // reclaims on a quiet server: about 2 MiB per such connection (measured, Deno 2.9).
          let slab: Uint8Array | null = null;
          do {
            // The handler's output is reused by every connection of this thread: copied before
            // the await.
            let out = handler.output;
            let copied: WriteSlab | null = null;
            if (slab === null && tracked.state.owedReplies === 0) {
              out = this.#arena.copy(out, length);
              copied = this.#arena.last;
            } else {
              slab ??= new Uint8Array(SLICE_BYTES);
              slab.set(out.subarray(0, length));
              out = slab;
            }
            // A write that does not finish means the client is not reading: the sweep closes it
            // once it has waited longer than the idle timeout.
            tracked.state.blockedSince = this.#clock.now;
            try {
              // One promise per write: writeAll's own await only when the kernel took part.
              const written = await conn.write(
                out.length === length ? out : out.subarray(0, length),
              );
              if (written < length) await writeAll(conn, out.subarray(written, length));
            } finally {
              if (copied !== null) this.#arena.release(copied);
            }
            tracked.state.blockedSince = 0;
            tracked.state.lastActivityAt = this.#clock.now;
            // Replies owed are still sent while draining: their lines were read before it began.
            length = handler.next(tracked.state);
            deadline = 0;
            while (length === WAIT_FOR_NUMBERS) {
              deadline ||= handler.numbersDeadline();
              length = this.#afterWait(tracked, await this.#numbersCame(tracked, deadline));
            }
          } while (length > 0);
          tracked.writing = false;
        }
        if (length < 0) break;
        // Draining: a connection accepted before the drain has had its request read and answered.
        if (this.#draining) await this.#closeForDrain(tracked);
        if (read === buffer.length) {
          // Filled: the next read gets more room, in a buffer of the connection's own. A batch
          // split over several reads is answered in several writes, and small writes after the
          // first wait for its ACK (Nagle) while the client delays that ACK: 40 ms stalls.
          if (buffer.length < MAX_READ_BYTES) {
            buffer = new Uint8Array(Math.max(OWN_READ_BYTES, buffer.length * 2));
          }
          smallReads = 0;
        } else if (buffer !== region) {
          // Small reads for a while: back to the region, the buffer goes to the collector.
          smallReads = read < REGION_BYTES ? smallReads + 1 : 0;
          if (smallReads >= SMALL_READS_TO_SHRINK) buffer = region;
        }
      }
    } catch (error) {
      if ((error as Error).message?.includes(NAME_REFUSED)) stats[Stat.rejectedServerName]!++;
      // A connection the sweep cut is counted once, by its reason, not again for the write or
      // read that the close made fail.
      else if (!this.#draining && !tracked.cut) this.#gate.peerError(tracked.state);
    } finally {
      // No read is pending into the region once the loop has ended.
      this.#regions.give(region);
      this.#open.delete(tracked);
      this.#unheard.delete(tracked);
      this.#gate.release(tracked.state, this.#clock.now);
      stats[Stat.connectionsActive]!--;
      try {
        conn.close();
      } catch {
        // Already closed by a drain.
      }
    }
  }

  /**
   * Resolves once numbers came (false) or the wait is over (true), on a thread that may not block
   * (numbering/number_wait_list.ts); the caller then asks the handler again. Counts as a write in
   * flight meanwhile (the caller clears it), so a drain answers the request first. Not an async function that calls
   * `next` itself: its result would reach the caller one microtask later, after another
   * connection's `next` had overwritten the shared output (replies mixed, numbers repeated on
   * the wire: seen on Deno).
   */
  #numbersCame(tracked: Tracked, deadline: number): Promise<boolean> {
    tracked.writing = true;
    tracked.waiting = true;
    return new Promise<boolean>((resolve) => this.#handler.whenNumbers(resolve, deadline));
  }

  /**
   * What a connection sends once its wait for numbers ended (`expired`: refused), called in the
   * task the wait resumed; {@linkcode CUT} for one closed meanwhile, which takes no number.
   */
  #afterWait(tracked: Tracked, expired: boolean): number {
    tracked.waiting = false;
    // The wait was the server's, not the client's idleness.
    tracked.state.lastActivityAt = this.#clock.now;
    if (tracked.cut) return CUT;
    return expired ? this.#handler.refuse(tracked.state) : this.#handler.next(tracked.state);
  }

  /** A FIN, once: what the client sends after it is dropped (the read loop). */
  #closeForDrain(tracked: Tracked): Promise<void> {
    if (tracked.state.closing) return Promise.resolve();
    tracked.state.closing = true;
    return closeWriteQuietly(tracked.conn);
  }

  async shutdown(timeoutMs: number): Promise<void> {
    clearInterval(this.#sweeper);
    this.#draining = true;
    if (this.#listener !== null) this.#close(this.#listener);
    this.#listener = null;
    // Half-close (FIN) connections waiting to read now, one being written after its write (the
    // read loop), one that has not spoken yet once it has been answered or its grace is over (see
    // FIRST_REQUEST_GRACE_MS); each closes when its client closes its side, or at the deadline.
    for (const tracked of this.#open) {
      if (!tracked.writing && !awaitsFirstBytes(tracked.state)) this.#closeForDrain(tracked);
    }
    const started = monotonicNow();
    const deadline = started + timeoutMs;
    let graceOver = false;
    while (this.#open.size > 0 && monotonicNow() < deadline) {
      if (!graceOver && monotonicNow() - started >= FIRST_REQUEST_GRACE_MS) {
        graceOver = true;
        for (const tracked of this.#open) {
          if (!tracked.writing) this.#closeForDrain(tracked);
        }
      }
      await sleep(10);
    }
    for (const tracked of this.#open) {
      tracked.cut = true;
      closeQuietly(tracked.conn);
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}

function isPeerGone(error: unknown): boolean {
  return error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.ConnectionReset;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function closeWriteQuietly(conn: Deno.Conn): Promise<void> {
  try {
    await conn.closeWrite();
  } catch {
    // Closed already.
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

/**
 * Starts one thread's listener on Deno.
 *
 * @param options Where to listen and how to answer.
 * @returns The running listener.
 * @throws {AddressInUseError} When the address is taken.
 */
export function listenDeno(options: ListenOptions): ThreadListener {
  return new DenoThreadListener(options);
}
