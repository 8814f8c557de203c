/**
 * What a serving thread does: builds the thread's handler over the process's number ledger and
 * stats, starts the runtime's listener and obeys the pool, over a channel shaped like a worker's
 * `self` (`postMessage`, `onmessage`). A worker thread binds it to `self` (worker_main.ts); a
 * pool of one thread runs it on the process's main thread (inline_thread.ts), which saves the
 * worker and the modules it loads again.
 *
 * @module
 */

import type { RuntimeAdapter, ThreadListener } from "../adapters/mod.ts";
import { AddressInUseError } from "../host/address_in_use_error.ts";
import { MessageHandler } from "../numbering/message_handler.ts";
import { NumberLedger } from "../numbering/number_ledger.ts";
import { ConnectionGate } from "../limits/connection_gate.ts";
import { TickingClock } from "../common/clock.ts";
import { LoopDelayMeter } from "../loop_delay.ts";
import { alignClock, monotonicNow } from "../common/clock.ts";
import { plantBlock } from "./_planted_block.ts";
import { statsRow } from "./thread_stats.ts";
import type { FromWorker, ToWorker } from "./_thread_messages.ts";
import type { ServeConfig } from "../config/resolve_config.ts";
import { readTlsPair } from "../tls/tls_files.ts";

/** The thread's end of its channel to the pool: a worker's `self`, or an inline thread's. */
export interface ThreadChannel {
  /** Sends a message to the pool. */
  postMessage(message: FromWorker): void;
  /** Set by {@linkcode serveThread}: receives the pool's messages. */
  onmessage: ((event: { data: ToWorker }) => unknown) | null;
}

/**
 * Serves one thread over `channel`: sets its `onmessage` and answers the pool's messages there.
 *
 * @param channel The thread's end of the channel.
 * @param runtime The runtime's adapter, whose listener the thread serves with.
 * @param mayBlock Whether the thread may block waiting for numbers: a worker may; the process's
 *   main thread may not (its event loop brings the numbers), so its connections wait parked.
 * @returns Stops the thread's clock timer, for a thread that does not end with its worker (the
 *   listener is closed by the pool's `drain` first).
 */
export function serveThread(
  channel: ThreadChannel,
  runtime: RuntimeAdapter,
  mayBlock: boolean,
): () => void {
  let handler: MessageHandler | null = null;
  let gate: ConnectionGate | null = null;
  let listener: ThreadListener | null = null;
  let loopDelay: LoopDelayMeter | null = null;
  /**
   * What the listener is bound with, as `cert\0key` PEM ("" for plain TCP): compared by content,
   * not by path, so files renewed in place are taken up on the next configuration.
   */
  let tlsInForce = "";
  // One clock read per tick for every timestamp the hot path takes (see limits/timeouts.ts); its
  // timer's ticks are the event-loop delay samples too (loop_delay.ts).
  const clock = new TickingClock(undefined, (now) => loopDelay?.tick(now));
  // Resolves the thread's pending question for the main thread's clock.
  let clockAnswer: ((now: number) => void) | null = null;

  const askMainThreadClock = (): Promise<number> => {
    const answer = new Promise<number>((resolve) => (clockAnswer = resolve));
    channel.postMessage({ type: "clock" });
    return answer;
  };

  const rebindOnNewTls = (listener: ThreadListener, config: ServeConfig): void => {
    let tls: { cert: string; key: string } | null;
    try {
      tls = tlsOf(config);
    } catch {
      // Replaced since the supervisor checked it (by a device, a FIFO, nothing): the pair in
      // force stays, and the next change checks the files again.
      return;
    }
    const content = tlsContent(tls, config);
    if (content === tlsInForce) return;
    tlsInForce = content;
    listener.setTls(tls);
  };

  channel.onmessage = async (event) => {
    const message = event.data;
    switch (message.type) {
      case "start": {
        // Made before the first await, so a `configure` arriving meanwhile reaches them.
        const ledger = new NumberLedger(message.ledgerBuffer);
        ledger.onStarved = () => channel.postMessage({ type: "starved" });
        ledger.onLow = () => channel.postMessage({ type: "low" });
        const stats = statsRow(message.statsBuffer, message.thread);
        handler = new MessageHandler(message.config, ledger, stats, undefined, clock, mayBlock);
        plantBlock(handler);
        gate = new ConnectionGate(message.gateBuffers, message.config, stats);
        // Times this thread writes to the address table are compared with other threads' times,
        // so its clock must share their origin before it admits anyone (see common/clock.ts).
        await alignClock(askMainThreadClock);
        clock.now = monotonicNow();
        // Started once the clock is aligned, so its first sample is not the alignment's jump.
        loopDelay = new LoopDelayMeter(stats);
        try {
          // The newest configuration: a `configure` may have come in during the await above.
          const tls = tlsOf(handler.config);
          listener = await runtime.listen({
            host: message.config.host,
            port: message.port,
            handler,
            stats,
            gate,
            clock,
            listenTurns: {
              lock: new Int32Array(message.listenLock),
              holder: message.listenHolder,
            },
            ...(tls === null ? {} : { tls }),
          });
          tlsInForce = tlsContent(tls, handler.config);
          channel.postMessage({ type: "listening", port: listener.port, runtime: runtime.runtime });
        } catch (error) {
          const code = error instanceof AddressInUseError ? "EADDRINUSE" : "LISTEN_FAILED";
          channel.postMessage({ type: "failed", code, message: (error as Error).message });
        }
        break;
      }
      case "clock":
        clockAnswer?.(message.now);
        break;
      case "configure":
        handler?.configure(message.config);
        gate?.configure(message.config);
        if (handler !== null && listener !== null) rebindOnNewTls(listener, message.config);
        channel.postMessage({ type: "ack" });
        break;
      case "pause":
        listener?.pause();
        channel.postMessage({ type: "ack" });
        break;
      case "resume":
        listener?.resume();
        channel.postMessage({ type: "ack" });
        break;
      case "drain":
        await listener?.shutdown(handler?.config.drainTimeoutMs ?? 0);
        loopDelay = null;
        channel.postMessage({ type: "drained" });
        break;
    }
  };
  return () => clock.stop();
}

function tlsContent(tls: { cert: string; key: string } | null, config: ServeConfig): string {
  // With the PROXY protocol the listener is bound plain and upgrades after the header (Bun), so
  // turning it on or off rebinds too.
  return tls === null ? "" : `${tls.cert}\0${tls.key}\0${config.proxyProtocol}`;
}

// Read here, in each thread: planConfig checked them (server/tls/tls_files.ts) before any thread is
// asked to use them. Read the same bounded way: only regular files, at most 1 MiB each.
function tlsOf(config: ServeConfig): { cert: string; key: string } | null {
  if (config.tlsCert === null || config.tlsKey === null) return null;
  return readTlsPair(config.tlsCert, config.tlsKey);
}
