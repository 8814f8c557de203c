/**
 * Fresh clients while connections are held: one connect-send-reply-close at a time from an
 * address the holders do not use, timed from the connect call to the end of the reply line. It
 * answers "is the server still serving newcomers while it holds a million", and numbers its
 * replies into the same set as the holders' so a number handed out twice is found.
 *
 * @module
 */

import { connect } from "node:net";
import { LatencyHistogram } from "./latency_histogram.ts";
import { errorCode } from "./transports/transport.ts";

/** What the probes found. */
export interface ProbeResult {
  /** Probes that got a numbered reply. */
  answered: number;
  /** Probes that failed, by kind (`ECONNREFUSED`, `closed_before_reply`, `reply_timeout`...). */
  failed: Record<string, number>;
  /** Connect-to-reply latency of the answered ones. */
  histogram: LatencyHistogram;
  /** The numbers received. */
  numbers: number[];
}

/** Where and how to probe. */
export interface ProbeOptions {
  host: string;
  port: number;
  /** Local address to connect from, or `null`. */
  source: string | null;
  message: Uint8Array;
  greeting: string;
  timeoutMs: number;
}

function probeOnce(options: ProbeOptions): Promise<{ number: number } | { error: string }> {
  return new Promise((resolve) => {
    const socket = options.source === null
      ? connect({ host: options.host, port: options.port })
      : connect({ host: options.host, port: options.port, localAddress: options.source });
    let text = "";
    let settled = false;
    const finish = (outcome: { number: number } | { error: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ error: "reply_timeout" }), options.timeoutMs);
    socket.setNoDelay(true);
    socket.once("connect", () => socket.write(options.message));
    socket.on("data", (chunk: Uint8Array) => {
      text += new TextDecoder().decode(chunk);
      const end = text.indexOf("\n");
      if (end === -1) return;
      const line = text.slice(0, end).replace(/\r$/, "");
      const digits = line.startsWith(options.greeting) ? line.slice(options.greeting.length) : "";
      finish(/^[1-9]\d*$/.test(digits) ? { number: Number(digits) } : { error: "bad_reply" });
    });
    socket.on("error", (error) => finish({ error: errorCode(error) }));
    socket.once("close", () => finish({ error: "closed_before_reply" }));
  });
}

/**
 * Runs `count` probes one after another.
 *
 * @param count How many.
 * @param options Where and how.
 * @param stop Checked before each probe; the probes end early when it returns true.
 * @returns What they found.
 */
export async function runFreshProbes(
  count: number,
  options: ProbeOptions,
  stop: () => boolean = () => false,
): Promise<ProbeResult> {
  const result: ProbeResult = {
    answered: 0,
    failed: {},
    histogram: new LatencyHistogram(),
    numbers: [],
  };
  for (let i = 0; i < count && !stop(); i++) {
    const started = performance.now();
    const outcome = await probeOnce(options);
    if ("number" in outcome) {
      result.histogram.record((performance.now() - started) * 1e6);
      result.answered++;
      result.numbers.push(outcome.number);
    } else result.failed[outcome.error] = (result.failed[outcome.error] ?? 0) + 1;
  }
  return result;
}
