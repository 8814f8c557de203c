/**
 * The Bun adapter: one `Bun.listen` per thread with SO_REUSEPORT.
 *
 * Modelled on Bun's own `node:net`: one handler object serves every socket, per-connection state
 * lives on `socket.data`, and no closure or promise is made per connection. `socket.write`
 * returns how many bytes the kernel took. Replies are encoded one slice at a time and only while
 * the kernel takes them: what it did not take of a slice is kept and sent from `drain`, followed
 * by the next slices of the replies still owed (a count, not bytes). A connection whose backlog
 * passes `maxPendingReplyBytes` stops being read (its lines wait in the kernel) until all of it is
 * written, so a client that never reads holds at most one slice of this process's memory.
 *
 * @module
 */

import { Connection, ConnectionExtra } from "../numbering/connection.ts";
import {
  CLOSE_LINE_TOO_LONG,
  type MessageHandler,
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
import { type ServerNameCheck, serverNameCheck } from "../server_names.ts";
import { quietListener } from "./_quiet_listener.ts";

/**
 * A connection's `unsent` while it is parked for numbers (a thread that may not block, see
 * numbering/number_wait_list.ts): not null, so reads only count lines and `drain` leaves it be.
 */
const WAITING_FOR_NUMBERS = new Uint8Array(0);

// The few parts of Bun's API this adapter uses, declared here so that shared code never loads
// bun-types (whose globals clash with Deno's).
interface BunSocket {
  data: Connection;
  readonly remoteAddress: string;
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  end(): void;
  shutdown(halfClose?: boolean): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  /** The name the client asked for (SNI) on a TLS socket; undefined when it sent none. */
  getServername(): string | undefined;
  /**
   * Starts TLS as the server on this plain socket. `initialData` (Bun 1.4.5, not in bun-types:
   * what node:net's server-side upgrade passes) is fed to TLS first: bytes already read.
   */
  upgradeTLS(options: {
    data: Connection;
    tls: { cert: string; key: string };
    socket: BunSocketHandler;
    initialData?: Uint8Array;
  }): [BunSocket, BunSocket];
}
interface BunListener {
  readonly port: number;
  /** The listening socket's descriptor (Bun 1.4.5; not in bun-types). */
  readonly fd: number;
  stop(closeActiveConnections?: boolean): void;
}
interface BunSocketHandler {
  open(socket: BunSocket): void;
  data(socket: BunSocket, chunk: Uint8Array): void;
  drain(socket: BunSocket): void;
  end(socket: BunSocket): void;
  handshake(socket: BunSocket, success: boolean, error: Error | null): void;
  close(socket: BunSocket): void;
  error(socket: BunSocket, error: Error): void;
}
interface BunGlobal {
  listen(options: {
    hostname: string;
    port: number;
    reusePort: boolean;
    /** Keep a socket open after the client's FIN (its `end` handler decides): Bun 1.4.5. */
    allowHalfOpen: boolean;
    socket: BunSocketHandler;
    tls?: { cert: string; key: string };
  }): BunListener;
}

class BunThreadListener implements ThreadListener, BunSocketHandler {
  readonly runtime = "bun";
  port: number;
  #listener: BunListener | null;
  readonly #listen: (port?: number) => BunListener;
  #tls: { cert: string; key: string } | null;
  #acceptsName: ServerNameCheck | null;
  /**
   * Whether the listener is bound plain although TLS is on: with the PROXY protocol the header
   * comes in clear before the handshake, so each connection is upgraded after it.
   */
  #tlsAfterHeader = false;
  /** The handlers of sockets upgraded to TLS: the same, but opened already. */
  readonly #secureHandler: BunSocketHandler;
  readonly #handler: MessageHandler;
  readonly #stats: Float64Array;
  /**
   * The open sockets, for the sweep and the drain: a dense array, each socket's place kept in its
   * `connection.openIndex` and filled by the last one when it closes. A `Set` entry cost a held
   * connection about 52 bytes of heap, a place here 8 and the index (docs/tuning.md). Walked from
   * the end, so a socket that closes during the walk (and the last one moved into its place,
   * already walked) is never skipped.
   */
  readonly #sockets: BunSocket[] = [];
  /**
   * Sockets that had not sent their first bytes when last swept (see the sweep), in accept
   * order; those that have spoken or closed are dropped by the next sweep, not at once.
   */
  #unheard: BunSocket[] = [];
  #fullSweepAt = 0;
  readonly #gate: ConnectionGate;
  readonly #clock: CoarseClock;
  readonly #sweeper: ReturnType<typeof setInterval>;
  /** Set once a drain (shutdown) began. */
  #draining = false;

  constructor({ host, port, handler, stats, gate, clock, tls }: ListenOptions) {
    this.#handler = handler;
    this.#stats = stats;
    this.#gate = gate;
    this.#clock = clock;
    const bun = (globalThis as unknown as { Bun: BunGlobal }).Bun;
    // One handler object, made once per listener, serves every socket.
    const socket: BunSocketHandler = {
      open: (s) => this.open(s),
      data: (s, chunk) => this.data(s, chunk),
      drain: (s) => this.drain(s),
      end: (s) => this.end(s),
      handshake: (s) => this.handshake(s),
      close: (s) => this.close(s),
      error: (s, e) => this.error(s, e),
    };
    this.#secureHandler = { ...socket, open: () => {} };
    // With tls, Bun (BoringSSL) handshakes before `data`; a client that does not speak TLS is
    // closed by it and never reaches the handler.
    this.#tls = tls ?? null;
    this.#acceptsName = tls === undefined ? null : serverNameCheck(tls.cert);
    this.#listen = (at = this.port) => {
      this.#tlsAfterHeader = this.#tls !== null && handler.config.proxyProtocol;
      const secure = this.#tls === null || this.#tlsAfterHeader ? {} : { tls: this.#tls };
      return bun.listen({
        hostname: host,
        port: at,
        reusePort: true,
        allowHalfOpen: true,
        socket,
        ...secure,
      });
    };
    try {
      this.#listener = this.#listen(port);
    } catch (error) {
      if ((error as { code?: string }).code === "EADDRINUSE") {
        throw new AddressInUseError(`Cannot listen on ${host}:${port}: the address is in use`);
      }
      throw error;
    }
    this.port = this.#listener.port;
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_EVERY_MS);
  }

  open(socket: BunSocket): void {
    // Reset by its peer before this handler ran (Bun 1.4.5 then has no address for it; an
    // exception here would reach `error` as a TypeError): nothing to serve, counted and closed.
    if (socket.remoteAddress === undefined) {
      this.#gate.peerError(undefined, undefined);
      socket.terminate();
      return;
    }
    const connection = new Connection();
    socket.data = connection;
    if (!this.#gate.admit(connection, socket.remoteAddress, this.#clock.now)) {
      // Refused: closed at once with a reset, so a flood costs no TIME_WAIT and no buffers here.
      connection.closing = true;
      socket.terminate();
      return;
    }
    connection.openIndex = this.#sockets.length;
    this.#sockets.push(socket);
    this.#unheard.push(socket);
    this.#stats[Stat.connectionsAccepted]!++;
    this.#stats[Stat.connectionsActive]!++;
  }

  /**
   * A client that asked for a name the certificate does not cover gets a clean close (TLS
   * close_notify, then FIN) before anything is read. Bun 1.4.5's `tls.serverName` does not refuse
   * other names with a single certificate, and Bun.listen has no SNI callback (only node:tls's
   * SNICallback, oven-sh/bun#14395), so the name is checked once the handshake is done.
   */
  handshake(socket: BunSocket): void {
    const name = socket.getServername();
    const accepts = this.#acceptsName;
    if (!name || accepts === null || accepts(name)) return;
    const connection = socket.data;
    if (connection.closing) return;
    this.#stats[Stat.rejectedServerName]!++;
    connection.closing = true;
    socket.end();
  }

  data(socket: BunSocket, chunk: Uint8Array): void {
    const connection = socket.data;
    if (connection.closing) return;
    const extra = connection.extra;
    if (extra !== null) {
      // Upgraded to TLS: the plain socket still sees the ciphertext; only the TLS socket's bytes
      // count.
      if (extra.secure !== null && extra.secure !== socket) return;
      if (extra.proxyPhase !== 0) {
        const skip = this.#gate.proxyData(connection, chunk, this.#clock.now);
        if (skip < 0) {
          if (skip === PROXY_CLOSE) {
            connection.closing = true;
            socket.terminate();
          }
          return;
        }
        if (this.#tlsAfterHeader && extra.secure === null) {
          this.#upgrade(socket, connection, chunk.subarray(skip));
          return;
        }
        if (skip === chunk.length) return;
        if (skip > 0) chunk = chunk.subarray(skip);
      }
    }
    const handler = this.#handler;
    // While a slice waits for `drain`, lines are only counted; drain encodes their replies.
    const blocked = connection.unsent !== null;
    const result = blocked ? handler.receive(connection, chunk) : handler.handle(connection, chunk);
    if (result === CLOSE_LINE_TOO_LONG) {
      // A peer breaking the protocol is cut at once; its unsent replies are dropped.
      connection.closing = true;
      socket.terminate();
      return;
    }
    if (!blocked) {
      const open = this.#send(socket, connection, result);
      if (open && connection.closing && connection.unsent === null) socket.shutdown();
    }
    // Draining: a connection accepted before the drain has had its request read; closed once
    // the replies owed are written (here, or from `drain`).
    if (this.#draining) this.#closeForDrain(socket);
    if (
      !connection.readPaused && connection.unsent !== null &&
      handler.backlogBytes(connection) > handler.config.maxPendingReplyBytes
    ) {
      connection.readPaused = true;
      this.#stats[Stat.readPauses]!++;
      socket.pause();
    }
  }

  /**
   * Starts TLS on a plain connection once its PROXY header is read (or, for a direct client, once
   * its first bytes show it is not one): what followed the header in the same read is the start
   * of the ClientHello, so it is handed to TLS first (HAProxy sends both in one segment as often
   * as not).
   */
  #upgrade(socket: BunSocket, connection: Connection, rest: Uint8Array): void {
    const [, secure] = socket.upgradeTLS({
      data: connection,
      tls: this.#tls!,
      socket: this.#secureHandler,
      ...(rest.length === 0 ? {} : { initialData: rest }),
    });
    (connection.extra ??= new ConnectionExtra()).secure = secure;
    // From here the TLS socket is the connection: the sweep, the drain at shutdown and `close`
    // (which Bun 1.4.5 calls for it, not for the plain socket, once initialData was given) use it.
    this.#sockets[connection.openIndex] = secure;
  }

  /**
   * Writes `length` bytes of the handler's output, then the next slices of the replies owed,
   * until the kernel stops taking them or none is owed; keeps what it did not take.
   *
   * @returns False when the peer was found gone and the socket terminated.
   */
  #send(socket: BunSocket, connection: Connection, length: number): boolean {
    const handler = this.#handler;
    while (length > 0) {
      const bytes = handler.output;
      const written = socket.write(bytes, 0, length);
      if (written < 0) {
        this.#peerGone(socket, connection);
        return false;
      }
      if (written < length) {
        // The output buffer is reused for the next connection, so what is left is copied.
        connection.unsent = bytes.slice(written, length);
        if (connection.blockedSince === 0) connection.blockedSince = this.#clock.now;
        return true;
      }
      length = handler.next(connection);
    }
    if (length === WAIT_FOR_NUMBERS) {
      // Nothing more is sent or encoded until numbers come; lines read meanwhile are counted.
      connection.unsent = WAITING_FOR_NUMBERS;
      this.#handler.whenNumbers((expired) => this.#numbersCame(socket, expired));
      return true;
    }
    // A refusal (no numbers; the replies owed are dropped) is a clean close after what was
    // already written: the caller shuts the socket down.
    if (length < 0) connection.closing = true;
    return true;
  }

  /** A connection parked by `#send` is called back: numbers came, or its wait is over. */
  #numbersCame(socket: BunSocket, expired: boolean): void {
    const connection = socket.data;
    // Closed meanwhile (`close` and a reset clear `unsent`): nothing is owed any more.
    if (connection.unsent !== WAITING_FOR_NUMBERS) return;
    connection.unsent = null;
    const handler = this.#handler;
    this.#sendOwed(
      socket,
      connection,
      expired ? handler.refuse(connection) : handler.next(connection),
    );
  }

  drain(socket: BunSocket): void {
    const connection = socket.data;
    // Replies to an upgraded connection go out through its TLS socket only.
    const extra = connection.extra;
    if (extra !== null && extra.secure !== null && extra.secure !== socket) return;
    const unsent = connection.unsent;
    // Parked for numbers: only its retry sends on it (see `#send`).
    if (unsent === WAITING_FOR_NUMBERS) return;
    if (unsent !== null) {
      const written = socket.write(unsent);
      if (written < 0) {
        this.#peerGone(socket, connection);
        return;
      }
      if (written < unsent.length) {
        if (written > 0) connection.unsent = unsent.subarray(written);
        return;
      }
      // The slice is gone: its memory goes back with it.
      connection.unsent = null;
    }
    // Replies owed are still sent while closing: their lines were read before the close began.
    this.#sendOwed(socket, connection, this.#handler.next(connection));
  }

  /**
   * After a slice was written whole or a wait for numbers ended: sends `length` bytes of the
   * handler's output and the slices after, then closes or reads again.
   */
  #sendOwed(socket: BunSocket, connection: Connection, length: number): void {
    connection.blockedSince = 0;
    connection.lastActivityAt = this.#clock.now;
    if (!this.#send(socket, connection, length)) return;
    if (connection.unsent !== null) return;
    if (connection.readPaused) {
      // Read again, closing too: a half-closed socket closes once the client's FIN is read, and
      // one never read again would stay open (and counted against its address) for good.
      connection.readPaused = false;
      socket.resume();
    }
    if (connection.closing) socket.shutdown();
  }

  /**
   * The client closed its side (FIN). Bun is asked to keep the socket open then (allowHalfOpen),
   * so what the client sent before it is still answered: a slice the kernel did not take yet, or
   * replies waiting for numbers (a thread that may not block parks them), as `printf 'x\n' | nc -N`
   * expects. The socket closes once they are written (our FIN after the client's closes it).
   */
  end(socket: BunSocket): void {
    const connection = socket.data as Connection | undefined;
    if (connection === undefined) return;
    const extra = connection.extra;
    if (extra !== null && extra.secure !== null && extra.secure !== socket) return;
    const wasClosing = connection.closing;
    connection.closing = true;
    // Closing already: our FIN was sent or is sent once the replies owed are (see `#sendOwed`).
    if (!wasClosing && connection.unsent === null) socket.shutdown();
  }

  /**
   * A write that returns a negative count met a reset: Bun 1.4.5 leaves such a socket open for
   * the caller to close (oven-sh/bun#36422), and a socket whose reads are paused would otherwise
   * stay open, with its backlog, until the sweep or shutdown found it.
   */
  #peerGone(socket: BunSocket, connection: Connection): void {
    if (!connection.closing) this.#gate.peerError(connection);
    connection.closing = true;
    connection.unsent = null;
    connection.owedReplies = 0;
    socket.terminate();
  }

  /**
   * Half-closes (FIN) rather than closes, once its replies owed are written: a request the client
   * sends meanwhile is read and dropped instead of drawing a reset, and the client sees a clean
   * end of stream. The socket closes when the client closes its side (its FIN after ours), or at
   * the drain's deadline.
   */
  #closeForDrain(socket: BunSocket): void {
    const connection = socket.data;
    if (connection.closing) return;
    connection.closing = true;
    if (connection.unsent === null) socket.shutdown();
  }

  close(socket: BunSocket): void {
    const index = socket.data?.openIndex ?? -1;
    // Not opened (refused, or reset before `open`), closed already, or the plain socket of one
    // upgraded to TLS (its TLS socket holds the place).
    if (index < 0 || this.#sockets[index] !== socket) return;
    const sockets = this.#sockets;
    const last = sockets.pop()!;
    if (last !== socket) {
      sockets[index] = last;
      last.data.openIndex = index;
    }
    socket.data.openIndex = -1;
    this.#stats[Stat.connectionsActive]!--;
    const connection = socket.data;
    this.#gate.release(connection, this.#clock.now);
    connection.unsent = null;
    connection.owedReplies = 0;
  }

  error(socket: BunSocket, _error: Error): void {
    // socket.data is unset for a reset that came before the open handler ran.
    this.#gate.peerError(socket.data as Connection | undefined, socket.remoteAddress);
  }

  #sweep(): void {
    const now = this.#clock.now;
    const config = this.#handler.config;
    if (now - this.#fullSweepAt >= fullSweepEveryMs(config.idleTimeoutMs)) {
      this.#fullSweepAt = now;
      const sockets = this.#sockets;
      for (let i = sockets.length - 1; i >= 0; i--) {
        const socket = sockets[i];
        if (socket !== undefined) this.#closeIfOverstayed(socket, now, config);
      }
    }
    // Every sweep, only the connections that have not spoken yet: a held connection that has
    // costs nothing here, so a million held cost what the new ones do.
    const unheard = this.#unheard;
    let kept = 0;
    for (let i = 0; i < unheard.length; i++) {
      const socket = unheard[i]!;
      const connection = socket.data;
      if (connection.openIndex < 0 || connection.closing || !awaitsFirstBytes(connection)) continue;
      this.#closeIfOverstayed(socket, now, config);
      unheard[kept++] = socket;
    }
    // Compacted in place; an array whose length fell far below what it once held is replaced,
    // so a burst of accepts does not keep its backing store for good.
    if (kept < unheard.length >>> 2) this.#unheard = unheard.slice(0, kept);
    else unheard.length = kept;
  }

  #closeIfOverstayed(socket: BunSocket, now: number, config: ServeConfig): void {
    const connection = socket.data;
    // Waiting for numbers is the server's wait, bounded by the handler's, not the client's.
    if (connection.unsent === WAITING_FOR_NUMBERS) return;
    const reason = overstayed(connection, now, config);
    if (reason < 0) return;
    if (connection.closing) {
      // Closing already (counted when that began, or after the client's FIN), it waits only for
      // the client to take its last replies or to close its side. One that does neither within
      // the timeouts is cut (a client that sends lines and its FIN and never reads would keep the
      // socket and its slice for good), counted only as the slow reader it is.
      if (reason === Stat.closedSlowReader) this.#stats[reason]!++;
      socket.terminate();
      return;
    }
    this.#stats[reason]!++;
    connection.closing = true;
    // Idle and silent clients get a clean close; a slowloris or a client that never reads
    // gets a reset, which frees the socket and its unsent replies at once.
    if (reason === Stat.closedIdleTimeout || reason === Stat.closedFirstMessageTimeout) {
      socket.end();
    } else {
      socket.terminate();
    }
  }

  /** Calls `f` on every open socket, from the end (see `#sockets`): for the drain only. */
  #eachSocket(f: (socket: BunSocket) => void): void {
    const sockets = this.#sockets;
    for (let i = sockets.length - 1; i >= 0; i--) {
      if (i < sockets.length) f(sockets[i]!);
    }
  }

  /**
   * Closes a listener while the port's other listeners stay (an upgrade's new tree, the other
   * threads): quieted first, so that a handshake completing in that moment is not reset (see
   * _quiet_listener.ts).
   */
  #close(listener: BunListener): void {
    quietListener(listener.fd);
    listener.stop(false);
  }

  pause(): void {
    if (this.#listener !== null) this.#close(this.#listener);
    this.#listener = null;
  }

  resume(): void {
    this.#listener ??= this.#listen();
  }

  setTls(tls: { cert: string; key: string } | null): void {
    this.#tls = tls;
    this.#acceptsName = tls === null ? null : serverNameCheck(tls.cert);
    if (this.#listener === null) return; // paused: resume() binds with it
    // The new socket joins the port's SO_REUSEPORT group before the old one leaves it.
    const next = this.#listen();
    this.#close(this.#listener);
    this.#listener = next;
  }

  async shutdown(timeoutMs: number): Promise<void> {
    clearInterval(this.#sweeper);
    if (this.#listener !== null) this.#close(this.#listener);
    this.#draining = true;
    // A connection that has not spoken yet is left open for its first request (see
    // FIRST_REQUEST_GRACE_MS); every other one is closed now.
    this.#eachSocket((socket) => {
      if (!awaitsFirstBytes(socket.data)) this.#closeForDrain(socket);
    });
    const started = monotonicNow();
    const deadline = started + timeoutMs;
    let graceOver = false;
    while (this.#sockets.length > 0 && monotonicNow() < deadline) {
      if (!graceOver && monotonicNow() - started >= FIRST_REQUEST_GRACE_MS) {
        graceOver = true;
        this.#eachSocket((socket) => this.#closeForDrain(socket));
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    this.#eachSocket((socket) => socket.terminate());
    this.#listener?.stop(true);
    this.#listener = null;
  }
}

/**
 * Starts one thread's listener on Bun.
 *
 * @param options Where to listen and how to answer.
 * @returns The running listener.
 * @throws {AddressInUseError} When the address is taken.
 */
export function listenBun(options: ListenOptions): ThreadListener {
  return new BunThreadListener(options);
}
