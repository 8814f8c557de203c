/**
 * Test clients over real TCP (node:net, the same on Bun and Deno).
 *
 * @module
 */

import { connect, type Socket } from "node:net";

/** A connected socket that collects reply lines. */
export class LineClient {
  readonly socket: Socket;
  #buffer = "";
  #lines: string[] = [];
  #waiters: Array<() => void> = [];
  closed = false;
  /** Resolves when the peer closes the connection. */
  readonly closedPromise: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.#buffer += chunk.toString("latin1");
      let index: number;
      while ((index = this.#buffer.indexOf("\n")) !== -1) {
        this.#lines.push(this.#buffer.slice(0, index));
        this.#buffer = this.#buffer.slice(index + 1);
      }
      this.#wake();
    });
    this.closedPromise = new Promise((resolve) => {
      socket.on("close", () => {
        this.closed = true;
        this.#wake();
        resolve();
      });
    });
    socket.on("error", () => {});
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Connects to `127.0.0.1:port`.
   *
   * @param port The port.
   * @param host The address.
   * @param localAddress The source address to connect from (any of 127.0.0.0/8 on loopback).
   * @returns The client once connected.
   */
  static connect(port: number, host = "127.0.0.1", localAddress?: string): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(localAddress ? { port, host, localAddress } : { port, host });
      socket.once("connect", () => resolve(new LineClient(socket)));
      socket.once("error", reject);
    });
  }

  /** Writes bytes or text. */
  send(data: string | Uint8Array): void {
    this.socket.write(data);
  }

  /**
   * Waits until `count` lines have arrived in all, or the peer closes, or the time is up.
   *
   * @param count How many lines in total to wait for.
   * @param timeoutMs How long to wait.
   * @returns All lines so far (may be fewer than `count` if closed or timed out).
   */
  async lines(count: number, timeoutMs = 10_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.#lines.length < count && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.#lines.slice();
  }

  /** Sends one message and waits for the reply line number `index + 1`. */
  async request(data: string | Uint8Array, timeoutMs = 10_000): Promise<string> {
    const before = this.#lines.length;
    this.send(data);
    const lines = await this.lines(before + 1, timeoutMs);
    if (lines.length <= before) {
      throw new Error(`no reply within ${timeoutMs} ms (closed: ${this.closed})`);
    }
    return lines[before]!;
  }

  /** Closes the connection. */
  close(): void {
    this.socket.destroy();
  }
}

/**
 * Parses a reply line.
 *
 * @param line `Hello World<N>` (or another greeting).
 * @param greeting The expected greeting.
 * @returns N.
 */
export function replyNumber(line: string, greeting = "Hello World"): number {
  if (!line.startsWith(greeting)) throw new Error(`unexpected reply: ${JSON.stringify(line)}`);
  const digits = line.slice(greeting.length);
  if (!/^[1-9]\d*$/.test(digits)) throw new Error(`reply has no number: ${JSON.stringify(line)}`);
  return Number(digits);
}

/**
 * Runs `task` over `items` with at most `limit` at a time.
 *
 * @returns The results in item order.
 */
export async function inBatches<T, R>(
  items: T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!, index);
    }
  });
  await Promise.all(runners);
  return results;
}

let nextSource = 0;

/**
 * A source address for the next short-lived connection: 127.0.100.1 to 127.0.100.250 in turn.
 * The client closes first, so each connection leaves a TIME_WAIT socket holding its ephemeral
 * port for 60 s; tens of thousands from one address exhaust its port range (28,232 here) and make
 * connect() crawl. Each source address has a port range of its own.
 */
export function rotatingSource(): string {
  nextSource = (nextSource % 250) + 1;
  return `127.0.100.${nextSource}`;
}

/**
 * One request on a fresh connection: connect (from `localAddress`), send a line, read one reply,
 * close.
 *
 * @param port The server's port on 127.0.0.1.
 * @param localAddress The source address; by default one of {@linkcode rotatingSource}'s.
 * @param timeoutMs How long to wait for the reply.
 * @returns The reply's number, or null when the connection was refused, reset or closed first.
 */
export async function oneRequest(
  port: number,
  localAddress = rotatingSource(),
  timeoutMs = 5000,
): Promise<number | null> {
  let client: LineClient;
  try {
    client = await LineClient.connect(port, "127.0.0.1", localAddress);
  } catch {
    return null;
  }
  try {
    return replyNumber(await client.request("hi\n", timeoutMs));
  } catch {
    return null;
  } finally {
    client.close();
  }
}
