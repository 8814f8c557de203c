/**
 * Leases from a Redis key shared by many tallyho servers: one number space for many machines.
 *
 * Each lease is one script run, atomic in Redis, that ends in `INCRBY KEY count`: its reply is the
 * new high-water mark `mark`, and the run is `mark - count + 1` to `mark`. No two leases, from any
 * server, get the same run, and Redis sees one round trip per lease (one or more blocks of 4096
 * numbers), never one per client.
 *
 * `--first-number` is kept atomically by the same script: when the key is missing or below
 * `firstNumber - 1` it first `SET`s it to `firstNumber - 1`, then `INCRBY`s, in one script, so no
 * other server's lease can fall between the two. (`SET NX` then `INCRBY` would only cover a
 * missing key, not a key left below a raised `--first-number`.) The script also refuses a key that
 * does not hold an integer, and a run that would pass 2^53 - 1, rather than guess.
 *
 * Durability is Redis's: a run is safe across a Redis crash only when Redis has written the
 * `INCRBY` to disk before replying (`appendonly yes`, `appendfsync always`); see the README,
 * "Durability is Redis's".
 *
 * When Redis is unreachable, leases fail at once (the client does not queue commands while
 * offline) and the client reconnects in the background with backoff; the supervisor's processes
 * serve from the blocks they already hold and refuse clients once those run out. A lease whose
 * reply is lost (the connection dropped, or it timed out) may still have advanced the key: that
 * run is abandoned, never handed out, so nothing is numbered from a guess.
 *
 * @module
 */

import { isIP } from "node:net";
// node-redis's client package rather than ioredis 6: its connect() rejects with the cause
// (WRONGPASS, ECONNREFUSED) where ioredis's says only "Connection is closed.", and it has no
// dependencies. Both reconnected and failed fast while offline on Bun 1.4.5 and Deno 2.9.6.
import { ClientOfflineError, createClient, ReconnectStrategyError } from "@redis/client";
import { MAX_NUMBER } from "../../../common/max_number.ts";
import { LeaseBehindError } from "../../lease_behind_error.ts";
import type {
  LeaseOptions,
  LeaseSource,
  LeaseSourceStatus,
  SourcePeek,
} from "../../lease_source.ts";
import { RedisLeaseError } from "./redis_lease_error.ts";
import { parseRedisUrl, type RedisTarget } from "./redis_url.ts";
import { LeaseTally } from "../../_lease_tally.ts";
import { firstNumberOption, readCaFile } from "../../_source_options.ts";

/** Options for {@linkcode RedisLeaseSource.open}. */
export interface RedisLeaseSourceOptions {
  /**
   * The password (from `--numbers-password-file` or `TALLYHO_REDIS_PASSWORD`); `null` sends none.
   * @default {null}
   */
  password?: string | null;
  /**
   * PEM file of the certificate authority to trust for `rediss://`; `null` trusts the runtime's
   * usual CAs.
   * @default {null}
   */
  caFile?: string | null;
  /**
   * The first number to hand out: a missing key, or one below `firstNumber - 1`, starts here.
   * @default {1}
   */
  firstNumber?: number;
  /**
   * Milliseconds to wait for a connection, at the start and on each reconnect.
   * @default {5000}
   */
  connectTimeoutMs?: number;
  /**
   * Milliseconds a lease waits for its reply before it fails; a run Redis granted after that is
   * abandoned.
   * @default {5000}
   */
  leaseTimeoutMs?: number;
  /**
   * Longest wait between reconnect attempts; they start at 50 ms and double up to it.
   * @default {2000}
   */
  maxReconnectDelayMs?: number;
  /**
   * Receives a line when the connection is lost and when it comes back.
   * @default {nothing}
   */
  log?: (line: string) => void;
}

// KEYS[1]: the mark. ARGV[1]: numbers to lease; ARGV[2]: first number - 1; ARGV[3]: 2^53 - 1;
// ARGV[4]: the highest number this server already leased (-1 for none): a key below it went
// backwards (overwritten, or lost by a Redis restarted empty), and the script refuses before
// INCRBY, so a refused lease leaves the key where it is for the operator to repair.
// Lua numbers are doubles, exact for every mark this script lets through (at most 2^53 - 1).
const LEASE_SCRIPT = `
local current = redis.call('GET', KEYS[1])
local count = tonumber(ARGV[1])
local floor = tonumber(ARGV[2])
local mark = floor
if current then
  if not string.match(current, '^%-?%d+$') then
    return redis.error_reply('TALLYHO_NOT_INTEGER ' .. string.sub(current, 1, 40))
  end
  mark = math.max(tonumber(current), floor)
end
if mark < tonumber(ARGV[4]) then
  return redis.error_reply('TALLYHO_BEHIND ' .. (current or 'missing'))
end
if mark + count > tonumber(ARGV[3]) then
  return redis.error_reply('TALLYHO_PAST_MAX ' .. string.format('%.0f', mark))
end
if not current or tonumber(current) < floor then
  redis.call('SET', KEYS[1], string.format('%.0f', floor))
end
return redis.call('INCRBY', KEYS[1], count)
`;

/** The few calls this source makes on a node-redis client. */
interface Client {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  sendCommand(args: string[]): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
}

/** Leases runs of numbers from one Redis key, shared by any number of tallyho servers. */
export class RedisLeaseSource implements LeaseSource {
  readonly description: string;
  readonly #target: RedisTarget;
  readonly #client: Client;
  readonly #firstNumber: number;
  readonly #leaseTimeoutMs: number;
  readonly #log: (line: string) => void;
  readonly #tally = new LeaseTally();
  #next: number;
  #lost = false;
  #closed = false;

  private constructor(
    target: RedisTarget,
    client: Client,
    next: number,
    firstNumber: number,
    options: RedisLeaseSourceOptions,
  ) {
    this.#target = target;
    this.#client = client;
    this.#next = next;
    this.#firstNumber = firstNumber;
    this.#leaseTimeoutMs = options.leaseTimeoutMs ?? 5000;
    this.#log = options.log ?? (() => {});
    this.description = `redis ${target.display}`;
  }

  /**
   * Connects, authenticates and checks the key.
   *
   * @param url The `--numbers` URL, or its parsed parts.
   * @param options Password, first number, timeouts, logging.
   * @returns The source, connected.
   * @throws {RedisLeaseError} When Redis cannot be reached, refuses the password, or the key
   * holds something other than an integer; one line naming the URL and the problem.
   * @throws {RangeError} When the URL is not a `redis://HOST:PORT/DB?key=KEY` URL.
   *
   * @example
   * ```ts
   * const source = await RedisLeaseSource.open("redis://127.0.0.1:6379/0?key=tallyho", {
   *   password: Deno.env.get("TALLYHO_REDIS_PASSWORD") ?? null,
   * });
   * const first = await source.lease(4096); // first .. first + 4095 are this server's
   * await source.close();
   * ```
   */
  static async open(
    url: string | RedisTarget,
    options: RedisLeaseSourceOptions = {},
  ): Promise<RedisLeaseSource> {
    const target = typeof url === "string" ? parseRedisUrl(url) : url;
    const firstNumber = firstNumberOption(options.firstNumber);
    const maxDelay = options.maxReconnectDelayMs ?? 2000;
    const ca = readCaFile(options.caFile, "Redis", RedisLeaseError);
    let connectedOnce = false;
    const common = {
      host: target.host,
      port: target.port,
      connectTimeout: options.connectTimeoutMs ?? 5000,
      // Before the first connection a failure is final (the server must not start on a hope
      // that Redis will come); after it, reconnect for as long as it takes.
      reconnectStrategy: (retries: number, cause: Error) =>
        connectedOnce ? Math.min(50 * 2 ** Math.min(retries, 16), maxDelay) : cause,
    };
    const redis = createClient({
      socket: target.tls
        ? {
          ...common,
          tls: true as const,
          // SNI carries host names only; node:tls refuses an IP address there (RFC 6066, 3).
          ...(isIP(target.host) ? {} : { servername: target.host }),
          // node:tls's `ca` works on Bun and Deno alike. Deno 2.9.6's node:tls still refused a
          // self-signed CA given in NODE_EXTRA_CA_CERTS or DENO_CERT here (Bun 1.4.5 takes it),
          // though denoland/deno#33148 meant to cover it; so a private CA needs this option.
          ...(ca === null ? {} : { ca: [ca] }),
        }
        : { ...common, tls: false as const },
      ...(target.username === null ? {} : { username: target.username }),
      // SELECTed on every (re)connect by the client, before any lease.
      ...(target.database === 0 ? {} : { database: target.database }),
      ...(options.password == null ? {} : { password: options.password }),
      // RESP2 (AUTH, no HELLO): the oldest protocol, spoken by every Redis and its forks.
      RESP: 2,
      // A lease while offline fails at once instead of waiting in a queue: the processes keep
      // serving from the blocks they hold, and the supervisor retries with backoff.
      disableOfflineQueue: true,
    });
    let source: RedisLeaseSource | null = null;
    let lastError = "";
    // node-redis emits 'error' for every failed (re)connect; without a listener it would throw.
    redis.on("error", (error: Error) => {
      lastError = error.message;
      if (source !== null) source.#connectionLost(error.message);
    });
    redis.on("ready", () => {
      if (source !== null) source.#connectionBack();
    });
    const client: Client = redis;
    try {
      await client.connect();
    } catch (error) {
      client.destroy();
      throw new RedisLeaseError(describeConnectError(target, error, lastError));
    }
    connectedOnce = true;
    let stored: unknown;
    try {
      stored = await client.sendCommand(["GET", target.key]);
    } catch (error) {
      client.destroy();
      // With RESP2 a missing password shows here (NOAUTH), not at the connection.
      const message = firstLine(error);
      throw new RedisLeaseError(
        /^NOAUTH/.test(message)
          ? describeConnectError(target, error, message)
          : `Cannot read Redis key ${JSON.stringify(target.key)} at ${target.display}: ${message}`,
      );
    }
    let next = firstNumber;
    if (stored !== null) {
      const text = String(stored);
      if (!/^-?\d+$/.test(text)) {
        client.destroy();
        throw new RedisLeaseError(notIntegerMessage(target, text));
      }
      const mark = Number(text);
      if (mark >= MAX_NUMBER) {
        client.destroy();
        throw new RedisLeaseError(
          `Redis key ${JSON.stringify(target.key)} at ${target.display} holds ${text}: ` +
            `every number up to ${MAX_NUMBER} is used`,
        );
      }
      next = Math.max(mark + 1, firstNumber);
    }
    source = new RedisLeaseSource(target, client, next, firstNumber, options);
    return source;
  }

  /**
   * Leases `count` consecutive numbers with one atomic script run in Redis.
   *
   * @param count How many.
   * @param options What the run must start above: the script checks it before `INCRBY`.
   * @returns The first; the run is `first` to `first + count - 1`.
   * @throws {RangeError} When the run would pass 2^53 - 1.
   * @throws {RedisLeaseError} When Redis is unreachable, times out, or the key is not an integer.
   * @throws {LeaseBehindError} When the key is below `options.above` (or missing): it went
   * backwards, and the key is left as it is.
   */
  async lease(count: number, options: LeaseOptions = {}): Promise<number> {
    try {
      if (!Number.isSafeInteger(count) || count < 1) {
        throw new RangeError(`A lease must be a positive integer count: got ${count}`);
      }
      if (this.#closed) throw new RedisLeaseError(`${this.description} is closed`);
      const mark = await this.#runScript(count, options.above ?? -1);
      const first = mark - count + 1;
      if (!Number.isSafeInteger(mark) || first < this.#firstNumber) {
        throw new RedisLeaseError(
          `Redis at ${this.#target.display} answered the lease of ${count} with ${mark}, ` +
            `which is not a run at or above ${this.#firstNumber}; the run is abandoned`,
        );
      }
      this.#next = Math.max(this.#next, mark + 1);
      this.#tally.granted(first, count);
      return first;
    } catch (error) {
      this.#tally.failed(error as Error);
      throw error;
    }
  }

  /**
   * Reads the key (`GET`), leasing nothing: where the number space stands now.
   *
   * @returns The mark (the key, or `firstNumber - 1` when it is missing or below) and what the
   * key holds.
   * @throws {RedisLeaseError} When Redis is unreachable, does not answer in time, or the key is
   * not an integer.
   */
  async peek(): Promise<SourcePeek> {
    if (this.#closed) throw new RedisLeaseError(`${this.description} is closed`);
    const stored = await this.#answer(
      this.#client.sendCommand(["GET", this.#target.key]),
      "a read",
    );
    const floor = this.#firstNumber - 1;
    if (stored === null) return { mark: floor, what: "the key is missing" };
    const text = String(stored);
    if (!/^-?\d+$/.test(text)) throw new RedisLeaseError(notIntegerMessage(this.#target, text));
    return { mark: Math.max(Number(text), floor), what: `the key holds ${text}` };
  }

  /**
   * A command's reply, or a {@linkcode RedisLeaseError} after the lease timeout: the client waits
   * for a reply to a sent command for as long as the connection lives, and a Redis that stopped
   * answering must not stall leasing.
   */
  async #answer(reply: Promise<unknown>, what: string): Promise<unknown> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new RedisLeaseError(
              `Redis at ${this.#target.display} did not answer ${what} within ` +
                `${this.#leaseTimeoutMs} ms`,
            ),
          ),
        this.#leaseTimeoutMs,
      );
    });
    reply.catch(() => {}); // a reply that loses the race is dropped, not unhandled
    try {
      return await Promise.race([reply, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #runScript(count: number, above: number): Promise<number> {
    const { key, display } = this.#target;
    const reply = this.#client.sendCommand([
      "EVAL",
      LEASE_SCRIPT,
      "1",
      key,
      String(count),
      String(this.#firstNumber - 1),
      String(MAX_NUMBER),
      String(above),
    ]);
    try {
      return Number(await this.#answer(reply, "a lease"));
    } catch (error) {
      if (error instanceof RedisLeaseError) throw error;
      const message = firstLine(error);
      if (message.startsWith("TALLYHO_PAST_MAX")) {
        throw new RangeError(
          `Cannot lease ${count} more numbers from ${display}: the next would pass ${MAX_NUMBER}`,
        );
      }
      if (message.startsWith("TALLYHO_BEHIND ")) {
        const held = message.slice("TALLYHO_BEHIND ".length);
        throw new LeaseBehindError(
          this.description,
          held === "missing" ? "the key is missing" : `the key holds ${held}`,
          above,
        );
      }
      if (message.startsWith("TALLYHO_NOT_INTEGER")) {
        const held = message.slice("TALLYHO_NOT_INTEGER ".length);
        throw new RedisLeaseError(notIntegerMessage(this.#target, held));
      }
      const offline = error instanceof ClientOfflineError;
      throw new RedisLeaseError(
        `Cannot lease from Redis at ${display}: ${
          offline ? "not connected (reconnecting)" : message
        }`,
      );
    }
  }

  #connectionLost(message: string): void {
    this.#tally.noteError(message);
    if (this.#lost || this.#closed) return;
    this.#lost = true;
    this.#log(`lost the connection to Redis at ${this.#target.display} (${message}); reconnecting`);
  }

  #connectionBack(): void {
    if (!this.#lost || this.#closed) return;
    this.#lost = false;
    this.#log(`reconnected to Redis at ${this.#target.display}`);
  }

  /**
   * The high-water mark as this source last saw it: one above its last lease, or above the key
   * when it opened. Other servers on the same key move the real mark on; a lease reads it anew.
   */
  get next(): number {
    return this.#next;
  }

  /** The key that holds the mark. */
  get key(): string {
    return this.#target.key;
  }

  status(): LeaseSourceStatus {
    return this.#tally.status(this.description, !this.#closed && this.#client.isReady, this.#next);
  }

  /** Closes the connection: gracefully when connected, at once when Redis is unreachable. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#client.isReady) {
      this.#client.destroy();
      return;
    }
    try {
      await this.#client.close();
    } catch {
      this.#client.destroy();
    }
  }
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0]!;
}

function notIntegerMessage(target: RedisTarget, held: string): string {
  return `Redis key ${JSON.stringify(target.key)} at ${target.display} holds ` +
    `${JSON.stringify(held.length > 40 ? held.slice(0, 40) + "..." : held)}, not an integer ` +
    `high-water mark: refusing to guess where numbering stopped`;
}

function describeConnectError(target: RedisTarget, error: unknown, lastError: string): string {
  const cause = error instanceof ReconnectStrategyError ? error.originalError : error;
  const message = firstLine(cause) || lastError;
  const where = `Redis at ${target.display}`;
  if (/^WRONGPASS/.test(message)) {
    return `${where} refused the password (${message.replace(/\.$/, "")}); ` +
      `check --numbers-password-file or TALLYHO_REDIS_PASSWORD`;
  }
  if (/^NOAUTH/.test(message)) {
    return `${where} needs a password: put it in a file named by --numbers-password-file ` +
      `or in TALLYHO_REDIS_PASSWORD`;
  }
  if (/without any password configured/.test(message)) {
    return `${where} has no password set, but one was given ` +
      `(--numbers-password-file or TALLYHO_REDIS_PASSWORD)`;
  }
  const code = (cause as { code?: string } | null)?.code;
  return `Cannot reach ${where}: ${
    code !== undefined && !message.includes(code) ? `${message} (${code})` : message
  }`;
}
