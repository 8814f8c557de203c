/**
 * Leases from an etcd key shared by many tallyho servers, through etcd's v3 JSON gateway.
 *
 * Each lease is one compare-and-swap transaction (`POST /v3/kv/txn`): if the key's mod revision
 * is still the one this source last saw, put `mark + count`; else read the key back in the same
 * round trip and try again (with jitter) from what it holds now. etcd commits a transaction on a
 * majority of its members (Raft) before it answers, so a granted run survives the loss of any
 * minority of them, leader included: unlike Redis, whose replication is asynchronous, a failover
 * cannot hand the same run out again.
 *
 * The key holds the last number leased (the high-water mark), as a decimal integer, as Redis's
 * does. `--first-number` is honoured in the same transaction: a missing key, or one below
 * `firstNumber - 1`, is treated as `firstNumber - 1`. A key that holds anything but an integer
 * is refused, never guessed at.
 *
 * Why the JSON gateway and `fetch` rather than gRPC (`etcd3` on npm): `fetch` is the same on
 * Bun, Deno and the compiled binary, needs no dependency and no HTTP/2; a lease is one request a
 * second or so per process, so JSON costs nothing that matters. The gateway path is `/v3/`
 * (etcd 3.4 also answers `/v3beta/`, which 3.5 dropped; 3.3 had only `/v3beta/`).
 *
 * Member failover: a connection error, a timeout or a 5xx answer ("no leader", "request timed
 * out", "leader changed") moves the source on to the next member, round the list, within a
 * bounded time per lease. A transaction whose answer was lost may have been committed: its run
 * is abandoned (the next compare fails and reads the key anew), never handed out.
 *
 * @module
 */

import type { TlsFetchFactory } from "../../../adapters/tls_fetch.ts";
import { MAX_NUMBER } from "../../../common/max_number.ts";
import { monotonicNow } from "../../../common/clock.ts";
import { EtcdLeaseError } from "./etcd_lease_error.ts";
import { type EtcdMember, type EtcdTarget, parseEtcdUrl } from "./etcd_url.ts";
import { LeaseBehindError } from "../../lease_behind_error.ts";
import type {
  LeaseOptions,
  LeaseSource,
  LeaseSourceStatus,
  SourcePeek,
} from "../../lease_source.ts";
import { LeaseTally } from "../../_lease_tally.ts";
import { firstNumberOption, readCaFile } from "../../_source_options.ts";
import { explainTlsFailure, type TlsProbeSettings } from "./tls_refusal.ts";

/** Options for {@linkcode EtcdLeaseSource.open}. */
export interface EtcdLeaseSourceOptions {
  /**
   * The password of the URL's user (from `--numbers-password-file`); `null` sends none.
   * @default {null}
   */
  password?: string | null;
  /**
   * PEM file of the certificate authority to trust for `etcds://`, for members whose
   * certificates no public CA signed; `null` trusts the runtime's usual CAs.
   * @default {null}
   */
  caFile?: string | null;
  /**
   * The client certificate to present for `etcds://` (from `--numbers-cert-file` and
   * `--numbers-key-file`, read and checked by `readTlsFiles`), for members started with
   * `--client-cert-auth`; `null` presents none.
   * @default {null}
   */
  clientCertificate?: { cert: string; key: string; file: string } | null;
  /**
   * The first number to hand out: a missing key, or one below `firstNumber - 1`, starts here.
   * @default {1}
   */
  firstNumber?: number;
  /**
   * Milliseconds one request to one member may take before the next member is tried. Short
   * on purpose: a follower holding a transaction it forwarded to a leader that just died
   * answers only at etcd's own request timeout (7 s by default, etcd 3.4), long after the
   * processes' held numbers (about a second's worth) ran out; the next member, asked anew after
   * the election, answers at once. A transaction given up on may still commit: its run is
   * abandoned (the next compare fails and reads the key anew).
   * @default {1000}
   */
  requestTimeoutMs?: number;
  /**
   * Milliseconds a lease (or the first read at open) may take in all, over every member and
   * every conflict, before it fails; the supervisor's processes then serve from held blocks and
   * retry.
   * @default {5000}
   */
  leaseTimeoutMs?: number;
  /**
   * Compare-and-swap conflicts (another server leased first) one lease retries before it fails.
   * @default {100}
   */
  maxConflicts?: number;
  /**
   * Receives a line for each lease (which run, from which member), and when members fail.
   * @default {nothing}
   */
  log?: (line: string) => void;
  /**
   * The `fetch` to use (tests may count requests).
   * @default {globalThis.fetch}
   */
  fetch?: typeof fetch;
  /**
   * Makes the `fetch` for a private CA or a client certificate: the runtime adapter's
   * `tlsFetch`. Needed with `caFile` or `clientCertificate` unless `fetch` is given.
   * @default {undefined}
   */
  tlsFetch?: TlsFetchFactory;
}

/** What the key held when last read: its value (`null`: missing) and its mod revision. */
interface Seen {
  value: number | null;
  modRevision: string;
}

/** A failed request worth trying on another member (unreachable, timed out, no leader). */
class MemberFailure extends Error {
  override name = "MemberFailure";
  /** A request timed out on what was left of the lease's time, not on its own full budget. */
  readonly cutShort: boolean;
  constructor(message: string, cutShort = false) {
    super(message);
    this.cutShort = cutShort;
  }
}

const ENCODER = new TextEncoder();

function base64(text: string): string {
  let binary = "";
  for (const byte of ENCODER.encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function fromBase64(text: string): string {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Leases runs of numbers from one etcd key, shared by any number of tallyho servers. */
export class EtcdLeaseSource implements LeaseSource {
  readonly description: string;
  readonly #target: EtcdTarget;
  readonly #key64: string;
  readonly #firstNumber: number;
  readonly #password: string | null;
  readonly #requestTimeoutMs: number;
  readonly #leaseTimeoutMs: number;
  readonly #maxConflicts: number;
  readonly #log: (line: string) => void;
  readonly #fetch: typeof fetch;
  /** What TLS requests present and trust, to explain a refused handshake; `null` for http. */
  #tls: TlsProbeSettings | null = null;
  readonly #tally = new LeaseTally();
  #member = 0;
  #token: string | null = null;
  #seen: Seen | null = null;
  #next: number;
  #connected = true;
  #closed = false;
  /** Leases from one server run one at a time: they would only conflict with each other. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(target: EtcdTarget, options: EtcdLeaseSourceOptions, firstNumber: number) {
    this.#target = target;
    this.#key64 = base64(target.key);
    this.#firstNumber = firstNumber;
    this.#next = firstNumber;
    this.#password = options.password ?? null;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 1000;
    this.#leaseTimeoutMs = options.leaseTimeoutMs ?? 5000;
    this.#maxConflicts = options.maxConflicts ?? 100;
    this.#log = options.log ?? (() => {});
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.description = `etcd ${target.display}`;
  }

  /**
   * Reaches a member, authenticates when a user is named, and checks the key.
   *
   * @param url The `--numbers` URL, or its parsed parts.
   * @param options Password, first number, timeouts, logging.
   * @returns The source.
   * @throws {EtcdLeaseError} When no member answers, the password is refused, or the key holds
   * something other than an integer; one line naming the URL and the problem.
   * @throws {RangeError} When the URL is not an `etcd://HOST:PORT[,...]/KEY` URL.
   *
   * @example
   * ```ts
   * const source = await EtcdLeaseSource.open("etcd://127.0.0.1:2379,127.0.0.1:22379/tallyho");
   * const first = await source.lease(4096); // first .. first + 4095 are this server's
   * await source.close();
   * ```
   */
  static async open(
    url: string | EtcdTarget,
    options: EtcdLeaseSourceOptions = {},
  ): Promise<EtcdLeaseSource> {
    const target = typeof url === "string" ? parseEtcdUrl(url) : url;
    const firstNumber = firstNumberOption(options.firstNumber);
    if ((options.password ?? null) !== null && target.username === null) {
      throw new EtcdLeaseError(
        `A password was given for etcd at ${target.display}, which names no user: ` +
          `write the user into the URL (etcd://USER@HOST:PORT/KEY)`,
      );
    }
    let fetchWith = options.fetch;
    const ca = readCaFile(options.caFile, "etcd", EtcdLeaseError);
    const client = options.clientCertificate ?? null;
    if (client !== null && !target.tls) {
      throw new EtcdLeaseError(
        `A client certificate (${client.file}) was given for ${target.display}, which is not ` +
          `TLS: write etcds:// to present it`,
      );
    }
    if ((ca !== null || client !== null) && fetchWith === undefined) {
      if (options.tlsFetch === undefined) {
        throw new TypeError("EtcdLeaseSource.open needs tlsFetch (the runtime's) for a CA file");
      }
      fetchWith = options.tlsFetch({ ca, cert: client?.cert ?? null, key: client?.key ?? null });
    }
    const source = new EtcdLeaseSource(
      target,
      fetchWith === undefined ? options : { ...options, fetch: fetchWith },
      firstNumber,
    );
    if (target.tls) {
      source.#tls = {
        ca,
        cert: client?.cert ?? null,
        key: client?.key ?? null,
        certFile: client?.file ?? null,
      };
    }
    const seen = await source.#read(monotonicNow() + source.#leaseTimeoutMs).catch((error) => {
      throw error instanceof MemberFailure
        ? new EtcdLeaseError(`Cannot reach etcd at ${target.display}: ${error.message}`)
        : error;
    });
    if (seen.value !== null && seen.value >= MAX_NUMBER) {
      throw new EtcdLeaseError(
        `etcd key ${JSON.stringify(target.key)} at ${target.display} holds ${seen.value}: ` +
          `every number up to ${MAX_NUMBER} is used`,
      );
    }
    source.#seen = seen;
    source.#next = Math.max((seen.value ?? 0) + 1, firstNumber);
    return source;
  }

  /**
   * Leases `count` consecutive numbers with one compare-and-swap transaction (more on conflict).
   *
   * @param count How many.
   * @param options What the run must start above: checked on the value the swap compares.
   * @returns The first; the run is `first` to `first + count - 1`.
   * @throws {RangeError} When the run would pass 2^53 - 1.
   * @throws {EtcdLeaseError} When no member answers in time, conflicts go on too long, or the
   * key is not an integer.
   * @throws {LeaseBehindError} When the key is below `options.above` (or missing): it went
   * backwards, and the key is left as it is.
   */
  lease(count: number, options: LeaseOptions = {}): Promise<number> {
    const run = this.#queue.then(() => this.#leaseNow(count, options.above ?? -1));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #leaseNow(count: number, above: number): Promise<number> {
    try {
      if (!Number.isSafeInteger(count) || count < 1) {
        throw new RangeError(`A lease must be a positive integer count: got ${count}`);
      }
      if (this.#closed) throw new EtcdLeaseError(`${this.description} is closed`);
      const deadline = monotonicNow() + this.#leaseTimeoutMs;
      let seen = this.#seen ?? await this.#read(deadline);
      let fresh = this.#seen === null;
      for (let conflicts = 0;; conflicts++) {
        const floor = this.#firstNumber - 1;
        const mark = Math.max(seen.value ?? floor, floor);
        if (mark < above) {
          // A cached value may be old; only what the key holds now can say it went backwards.
          if (!fresh) {
            seen = await this.#read(deadline);
            fresh = true;
            conflicts--;
            continue;
          }
          throw new LeaseBehindError(
            this.description,
            seen.value === null ? "the key is missing" : `the key holds ${seen.value}`,
            above,
          );
        }
        if (mark > MAX_NUMBER - count) {
          throw new RangeError(
            `Cannot lease ${count} more numbers from ${this.#target.display}: ` +
              `the next would pass ${MAX_NUMBER}`,
          );
        }
        const swapped = await this.#swap(seen.modRevision, mark + count, deadline);
        if (swapped.granted) {
          this.#seen = { value: mark + count, modRevision: swapped.revision };
          const first = mark + 1;
          this.#next = Math.max(this.#next, mark + count + 1);
          this.#tally.granted(first, count);
          this.#markConnected();
          this.#log(
            `leased ${first}..${mark + count} from etcd member ${this.member} ` +
              `(revision ${swapped.revision})`,
          );
          return first;
        }
        // Another server leased first: its value came back with the failed compare.
        seen = swapped.seen;
        this.#seen = seen;
        fresh = true;
        if (conflicts + 1 >= this.#maxConflicts) {
          throw new EtcdLeaseError(
            `Cannot lease from etcd at ${this.#target.display}: ${conflicts + 1} ` +
              `compare-and-swap conflicts in a row (other servers leasing at once)`,
          );
        }
        // Jitter, so servers that collided do not collide again in lockstep.
        await sleep(Math.random() * Math.min(50, 2 ** Math.min(conflicts, 6)));
      }
    } catch (error) {
      const failure = error instanceof MemberFailure
        ? new EtcdLeaseError(`Cannot lease from etcd at ${this.#target.display}: ${error.message}`)
        : error as Error;
      if (error instanceof MemberFailure) this.#markLost(error.message);
      this.#seen = failure instanceof LeaseBehindError ? this.#seen : null;
      this.#tally.failed(failure);
      throw failure;
    }
  }

  /**
   * Reads the key (a linearizable range, so it sees every lease committed before it), leasing
   * nothing: where the number space stands now.
   *
   * @returns The mark (the key, or `firstNumber - 1` when it is missing or below) and what the
   * key holds.
   * @throws {EtcdLeaseError} When no member answers within one request timeout, or the key is
   * not an integer.
   */
  async peek(): Promise<SourcePeek> {
    if (this.#closed) throw new EtcdLeaseError(`${this.description} is closed`);
    let seen: Seen;
    try {
      seen = await this.#read(monotonicNow() + this.#requestTimeoutMs);
    } catch (error) {
      throw error instanceof MemberFailure
        ? new EtcdLeaseError(`Cannot read etcd at ${this.#target.display}: ${error.message}`)
        : error;
    }
    const floor = this.#firstNumber - 1;
    return seen.value === null
      ? { mark: floor, what: "the key is missing" }
      : { mark: Math.max(seen.value, floor), what: `the key holds ${seen.value}` };
  }

  /** Reads the key: its value and mod revision. */
  async #read(deadline: number): Promise<Seen> {
    const reply = await this.#call("/v3/kv/range", { key: this.#key64 }, deadline);
    return this.#seenIn(reply);
  }

  /** One transaction: put `mark` if the key's mod revision is `modRevision`, else read it. */
  async #swap(
    modRevision: string,
    mark: number,
    deadline: number,
  ): Promise<{ granted: true; revision: string } | { granted: false; seen: Seen }> {
    const reply = await this.#call("/v3/kv/txn", {
      compare: [{
        key: this.#key64,
        target: "MOD",
        result: "EQUAL",
        mod_revision: modRevision,
      }],
      success: [{ request_put: { key: this.#key64, value: base64(String(mark)) } }],
      failure: [{ request_range: { key: this.#key64 } }],
    }, deadline) as {
      succeeded?: boolean;
      header?: { revision?: string };
      responses?: { response_range?: unknown }[];
    };
    // proto3 JSON leaves out false: a missing `succeeded` is a failed compare.
    if (reply.succeeded === true) {
      const revision = reply.header?.revision;
      if (typeof revision !== "string" || !/^\d+$/.test(revision)) {
        throw new EtcdLeaseError(
          `etcd at ${this.member} granted a lease without a revision; the run is abandoned`,
        );
      }
      return { granted: true, revision };
    }
    const range = reply.responses?.[0]?.response_range;
    if (range === undefined) {
      throw new EtcdLeaseError(`etcd at ${this.member} answered a failed compare without the key`);
    }
    return { granted: false, seen: this.#seenIn(range) };
  }

  #seenIn(range: unknown): Seen {
    const kv = (range as { kvs?: { value?: string; mod_revision?: string }[] }).kvs?.[0];
    if (kv === undefined) return { value: null, modRevision: "0" };
    const text = fromBase64(kv.value ?? "");
    if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
      throw new EtcdLeaseError(
        `etcd key ${JSON.stringify(this.#target.key)} at ${this.#target.display} holds ` +
          `${JSON.stringify(text.length > 40 ? text.slice(0, 40) + "..." : text)}, not an ` +
          `integer high-water mark: refusing to guess where numbering stopped`,
      );
    }
    return { value: Number(text), modRevision: kv.mod_revision ?? "0" };
  }

  /**
   * POSTs to the member in use; on a failure worth it, to the next, round the list, until the
   * deadline, pausing 50 ms more after each full round.
   */
  async #call(path: string, body: unknown, deadline: number): Promise<unknown> {
    const members = this.#target.members;
    // Each member's last failure, for the message; one cut short by the deadline does not hide
    // an earlier one that said why (a refused certificate, say).
    const failures = new Map<string, MemberFailure>();
    for (let attempt = 0;; attempt++) {
      const member = members[this.#member]!;
      try {
        return await this.#post(member, path, body, deadline);
      } catch (error) {
        if (!(error instanceof MemberFailure)) throw error;
        const name = member.base.replace(/^https?:\/\//, "");
        if (!error.cutShort || !failures.has(name)) failures.set(name, error);
        this.#tally.noteError(error.message);
        const before = this.#member;
        this.#member = (this.#member + 1) % members.length;
        if (members.length > 1 && this.#connected) {
          this.#log(
            `etcd member ${members[before]!.base} failed (${error.message}); ` +
              `trying ${members[this.#member]!.base}`,
          );
        }
        const round = Math.floor((attempt + 1) / members.length);
        const pause = (attempt + 1) % members.length === 0 ? Math.min(50 * round, 500) : 0;
        if (monotonicNow() + pause >= deadline) {
          throw new MemberFailure(
            [...failures].map(([name, failure]) => `${name}: ${failure.message}`).join("; "),
          );
        }
        if (pause > 0) await sleep(pause);
      }
    }
  }

  async #post(member: EtcdMember, path: string, body: unknown, deadline: number): Promise<unknown> {
    const budget = Math.max(1, Math.min(this.#requestTimeoutMs, deadline - monotonicNow()));
    if (this.#target.username !== null && this.#token === null) {
      this.#token = await this.#authenticate(member, budget);
    }
    const { status, json } = await this.#request(member, path, body, budget, this.#token);
    if (status === 200) return json;
    const message = gatewayMessage(json, status);
    if (status === 401 && this.#target.username !== null && /auth token/.test(message)) {
      // A simple token expires (etcd's --auth-token-ttl, 5 minutes by default): sign in again.
      this.#token = null;
      throw new MemberFailure(message);
    }
    if (status >= 500) throw new MemberFailure(message);
    const hint = /user name is empty/.test(message)
      ? ": the cluster has authentication on; name a user in the URL " +
        "(etcd://USER@HOST:PORT/KEY) and put its password in --numbers-password-file"
      : /permission denied/.test(message)
      ? `: give the user read and write on the key ${JSON.stringify(this.#target.key)}`
      : "";
    throw new EtcdLeaseError(`etcd at ${member.base} refused ${path}: ${message}${hint}`);
  }

  async #authenticate(member: EtcdMember, budget: number): Promise<string> {
    const { status, json } = await this.#request(
      member,
      "/v3/auth/authenticate",
      {
        name: this.#target.username,
        password: this.#password ?? "",
      },
      budget,
      null,
    );
    const token = (json as { token?: string } | null)?.token;
    if (status === 200 && typeof token === "string") return token;
    const message = gatewayMessage(json, status);
    if (status >= 500) throw new MemberFailure(message);
    throw new EtcdLeaseError(
      `etcd at ${this.#target.display} refused user ${JSON.stringify(this.#target.username)} ` +
        `(${message}); check the user in the URL and --numbers-password-file`,
    );
  }

  async #request(
    member: EtcdMember,
    path: string,
    body: unknown,
    budget: number,
    token: string | null,
  ): Promise<{ status: number; json: unknown }> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), budget);
    try {
      const response = await this.#fetch(`${member.base}${path}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(token === null ? {} : { authorization: token }),
        },
        body: JSON.stringify(body),
        signal: abort.signal,
      });
      const text = await response.text();
      let json: unknown = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = { error: text.slice(0, 200) };
      }
      return { status: response.status, json };
    } catch (error) {
      if (abort.signal.aborted) {
        throw new MemberFailure(
          `no answer within ${Math.round(budget)} ms`,
          budget < this.#requestTimeoutMs,
        );
      }
      const cause = (error as { cause?: { code?: string } }).cause?.code ??
        (error as { code?: string }).code;
      const refused = this.#tls === null || cause === "ECONNREFUSED"
        ? null
        : await explainTlsFailure(member.host, member.port, this.#tls, Math.min(budget, 1000));
      throw new MemberFailure(refused ?? cause ?? (error as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }

  #markLost(message: string): void {
    if (!this.#connected || this.#closed) return;
    this.#connected = false;
    this.#log(`no etcd member at ${this.#target.display} answers (${message}); retrying`);
  }

  #markConnected(): void {
    if (this.#connected) return;
    this.#connected = true;
    this.#log(`leasing from etcd at ${this.#target.display} again, through ${this.member}`);
  }

  /** The member requests go to now, as `HOST:PORT`. */
  get member(): string {
    return this.#target.members[this.#member]!.base.replace(/^https?:\/\//, "");
  }

  /**
   * The high-water mark as this source last saw it: one above its last lease, or above the key
   * when it opened. Other servers on the same key move the real mark on; a lease reads it anew.
   */
  get next(): number {
    return this.#next;
  }

  status(): LeaseSourceStatus {
    return {
      ...this.#tally.status(this.description, !this.#closed && this.#connected, this.#next),
      member: this.member,
    };
  }

  /** Nothing stays open between requests; later leases fail. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}

function gatewayMessage(json: unknown, status: number): string {
  const body = json as { error?: unknown; message?: unknown } | null;
  const text = typeof body?.message === "string"
    ? body.message
    : typeof body?.error === "string"
    ? body.error
    : "";
  return text === "" ? `HTTP ${status}` : `${text} (HTTP ${status})`;
}
