/**
 * The Bun adapter: one `Bun.listen` per thread with SO_REUSEPORT.
 *
 * Modelled on Bun's own `node:net`: one handler object serves every socket, per-connection state
 * lives on `socket.data`, and no closure or promise is made per connection. `socket.write`
 * returns how many bytes the kernel took; the rest is queued and sent from `drain`, and a
 * connection whose queue passes the high-water mark stops being read until it empties, so a
 * client that never reads cannot grow the server's memory.
 *
 * @module
 */

import { Connection } from "../connection.ts";
import { CLOSE_LINE_TOO_LONG, type MessageHandler } from "../message_handler.ts";
import { type ConnectionGate, PROXY_CLOSE } from "../limits/connection_gate.ts";
import type { CoarseClock } from "../coarse_clock.ts";
import { overstayed, SWEEP_EVERY_MS } from "../limits/timeouts.ts";
import { monotonicNow } from "../monotonic_clock.ts";
import { Stat } from "../thread_stats.ts";
import { AddressInUseError } from "../address_in_use_error.ts";
import type { ListenOptions, ThreadListener } from "./thread_listener.ts";

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
}
interface BunListener {
  readonly port: number;
  stop(closeActiveConnections?: boolean): void;
}
interface BunSocketHandler {
  open(socket: BunSocket): void;
  data(socket: BunSocket, chunk: Uint8Array): void;
  drain(socket: BunSocket): void;
  close(socket: BunSocket): void;
  error(socket: BunSocket, error: Error): void;
}
interface BunGlobal {
  listen(options: {
    hostname: string;
    port: number;
    reusePort: boolean;
    socket: BunSocketHandler;
    tls?: { cert: string; key: string };
  }): BunListener;
}

class BunThreadListener implements ThreadListener, BunSocketHandler {
  readonly runtime = "bun";
  port: number;
  #listener: BunListener | null;
  readonly #listen: () => BunListener;
  #tls: { cert: string; key: string } | null;
  readonly #handler: MessageHandler;
  readonly #stats: Float64Array;
  readonly #sockets = new Set<BunSocket>();
  readonly #gate: ConnectionGate;
  readonly #clock: CoarseClock;
  readonly #sweeper: ReturnType<typeof setInterval>;

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
      close: (s) => this.close(s),
      error: (s, e) => this.error(s, e),
    };
    // With tls, Bun (BoringSSL) handshakes before `data`; a client that does not speak TLS is
    // closed by it and never reaches the handler.
    this.#tls = tls ?? null;
    this.#listen = () => {
      const secure = this.#tls === null ? {} : { tls: this.#tls };
      return bun.listen({ hostname: host, port: this.port, reusePort: true, socket, ...secure });
    };
    try {
      const secure = tls === undefined ? {} : { tls };
      this.#listener = bun.listen({ hostname: host, port, reusePort: true, socket, ...secure });
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
    const connection = new Connection();
    socket.data = connection;
    if (!this.#gate.admit(connection, socket.remoteAddress, this.#clock.now)) {
      // Refused: closed at once with a reset, so a flood costs no TIME_WAIT and no buffers here.
      connection.closing = true;
      socket.terminate();
      return;
    }
    this.#sockets.add(socket);
    this.#stats[Stat.connectionsAccepted]!++;
    this.#stats[Stat.connectionsActive]!++;
  }

  data(socket: BunSocket, chunk: Uint8Array): void {
    const connection = socket.data;
    if (connection.closing) return;
    if (connection.proxyPhase !== 0) {
      const skip = this.#gate.proxyData(connection, chunk, this.#clock.now);
      if (skip < 0) {
        if (skip === PROXY_CLOSE) {
          connection.closing = true;
          socket.terminate();
        }
        return;
      }
      if (skip === chunk.length) return;
      if (skip > 0) chunk = chunk.subarray(skip);
    }
    const length = this.#handler.handle(connection, chunk);
    if (length > 0) this.#send(socket, connection, this.#handler.output, length);
    else if (length < 0) {
      connection.closing = true;
      // A peer breaking the protocol is cut at once; its queued replies are dropped. A refusal
      // (no numbers) is a clean close after what was already queued.
      if (length === CLOSE_LINE_TOO_LONG) socket.terminate();
      else if (connection.queuedBytes === 0) socket.shutdown();
    }
  }

  #send(socket: BunSocket, connection: Connection, bytes: Uint8Array, length: number): void {
    let written = 0;
    if (connection.queuedBytes === 0) {
      written = socket.write(bytes, 0, length);
      if (written >= length) return;
      if (written < 0) written = 0;
    }
    // The output buffer is reused for the next read, so what the kernel did not take is copied.
    connection.queue.push(bytes.slice(written, length));
    connection.queuedBytes += length - written;
    if (connection.blockedSince === 0) connection.blockedSince = this.#clock.now;
    if (
      connection.queuedBytes > this.#handler.config.maxPendingReplyBytes && !connection.readPaused
    ) {
      connection.readPaused = true;
      this.#stats[Stat.readPauses]!++;
      socket.pause();
    }
  }

  drain(socket: BunSocket): void {
    const connection = socket.data;
    const queue = connection.queue;
    while (queue.length > 0) {
      const head = queue[0]!;
      const written = socket.write(head);
      if (written < head.length) {
        if (written > 0) {
          queue[0] = head.subarray(written);
          connection.queuedBytes -= written;
        }
        return;
      }
      queue.shift();
      connection.queuedBytes -= head.length;
    }
    connection.blockedSince = 0;
    connection.lastActivityAt = this.#clock.now;
    if (connection.closing) socket.shutdown();
    else if (connection.readPaused) {
      connection.readPaused = false;
      socket.resume();
    }
  }

  close(socket: BunSocket): void {
    if (!this.#sockets.delete(socket)) return;
    this.#stats[Stat.connectionsActive]!--;
    const connection = socket.data;
    this.#gate.release(connection, this.#clock.now);
    connection.queue.length = 0;
    connection.queuedBytes = 0;
  }

  error(_socket: BunSocket, _error: Error): void {
    this.#stats[Stat.closedPeerError]!++;
  }

  #sweep(): void {
    const now = this.#clock.now;
    const config = this.#handler.config;
    for (const socket of this.#sockets) {
      const connection = socket.data;
      if (connection.closing) continue;
      const reason = overstayed(connection, now, config);
      if (reason < 0) continue;
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
  }

  pause(): void {
    this.#listener?.stop(false);
    this.#listener = null;
  }

  resume(): void {
    this.#listener ??= this.#listen();
  }

  setTls(tls: { cert: string; key: string } | null): void {
    this.#tls = tls;
    if (this.#listener === null) return; // paused: resume() binds with it
    // The new socket joins the port's SO_REUSEPORT group before the old one leaves it.
    const next = this.#listen();
    this.#listener.stop(false);
    this.#listener = next;
  }

  async shutdown(timeoutMs: number): Promise<void> {
    clearInterval(this.#sweeper);
    this.#listener?.stop(false);
    // Half-close (FIN) rather than close: a request the client sends meanwhile is read and
    // dropped instead of drawing a reset, and the client sees a clean end of stream. The socket
    // closes when the client closes its side (allowHalfOpen is off), or at the deadline.
    for (const socket of this.#sockets) {
      socket.data.closing = true;
      if (socket.data.queuedBytes === 0) socket.shutdown();
    }
    const deadline = monotonicNow() + timeoutMs;
    while (this.#sockets.size > 0 && monotonicNow() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (const socket of this.#sockets) socket.terminate();
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
