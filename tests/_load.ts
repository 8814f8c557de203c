/**
 * Test fixture: a bounded load of TCP requests on 127.0.0.1, run in the background while a test
 * watches something else (the dashboard).
 *
 * @module
 */

import { LineClient } from "./_client.ts";
import { sleep } from "./_wait.ts";

/** Options for {@linkcode startLoad}. */
export interface LoadOptions {
  /**
   * Clients running at once.
   * @default {8}
   */
  clients?: number;
  /**
   * Requests each connection makes before it closes and a new one opens, so new connections keep
   * coming too. Every closed connection holds a local port in TIME_WAIT for 60 s: keep this high
   * enough that a run does not use up the machine's ephemeral ports (28,232 by default).
   * @default {1000}
   */
  requestsPerConnection?: number;
  /**
   * Most requests in all.
   * @default {200000}
   */
  maxRequests?: number;
  /**
   * Most time it runs, in milliseconds.
   * @default {60000}
   */
  maxMs?: number;
}

/** A load running in the background. */
export interface Load {
  /** Replies received so far. */
  readonly replies: number;
  /** Stops it; resolves with the replies received once every client has closed. */
  stop(): Promise<number>;
}

/**
 * Starts a load: each client connects, sends `hi` and waits for the reply, again and again.
 *
 * @param port The server's port on 127.0.0.1.
 * @param options How many clients, and the bounds in count and time.
 * @returns The running load.
 */
export function startLoad(port: number, options: LoadOptions = {}): Load {
  const clients = options.clients ?? 8;
  const perConnection = options.requestsPerConnection ?? 1000;
  const maxRequests = options.maxRequests ?? 200_000;
  const deadline = Date.now() + (options.maxMs ?? 60_000);
  let replies = 0;
  let sent = 0;
  let stopped = false;
  const going = () => !stopped && sent < maxRequests && Date.now() < deadline;
  const runners = Array.from({ length: clients }, async () => {
    while (going()) {
      let client: LineClient;
      try {
        client = await LineClient.connect(port);
      } catch {
        await sleep(50);
        continue;
      }
      try {
        for (let i = 0; i < perConnection && going(); i++) {
          sent++;
          await client.request("hi", 5000);
          replies++;
        }
      } catch {
        // Refused or closed (a pause, a limit): open another, after a breath, so a refusing
        // server is not met by a tight loop of connects.
        await sleep(100);
      } finally {
        client.close();
      }
    }
  });
  const done = Promise.all(runners);
  return {
    get replies() {
      return replies;
    },
    stop: async () => {
      stopped = true;
      await done;
      return replies;
    },
  };
}
