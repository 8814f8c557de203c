/**
 * Admission of new connections, the same on every runtime: the allow and deny lists, the
 * process's connection cap and the per-address cap and rate. A refused connection is accepted and
 * closed at once by the adapter, so the kernel's queues keep moving, and is counted by reason.
 *
 * @module
 */

import type { ServeConfig } from "../config/resolve_config.ts";
import { type Connection, ConnectionExtra } from "../numbering/connection.ts";
import { Stat } from "../threads/thread_stats.ts";
import {
  type AddressLimits,
  AddressTable,
  BYTES_PER_ADDRESS,
  OVER_ADDRESS_CAP,
  OVER_RATE,
  UNTRACKED,
} from "./address_table.ts";
import { CidrList } from "./cidr_list.ts";
import { type IpWords, readIp } from "./ip_key.ts";
import {
  looksLikeProxyHeader,
  PROXY_INVALID,
  PROXY_MORE,
  readProxyHeader,
} from "../proxy_header.ts";

/** `ConnectionExtra.proxyPhase`: a trusted balancer's connection whose header has not ended. */
export const PROXY_AWAIT = 1;
/** `ConnectionExtra.proxyPhase`: a direct client whose first read must not be a header. */
export const PROXY_SNIFF = 2;
/** From {@linkcode ConnectionGate.proxyData}: the header has not ended; nothing to serve yet. */
const PROXY_WAIT = PROXY_MORE;
/** From {@linkcode ConnectionGate.proxyData}: close the connection now (counted by reason). */
export const PROXY_CLOSE = PROXY_INVALID;

/** Addresses a process tracks at once: 64 Ki slots, 4.25 MiB of shared memory. */
export const ADDRESS_TABLE_SLOTS = 65536;

// Int32 slots of the gate's `active` buffer.
const ACTIVE = 0; // connections the process holds
const NO_DESCRIPTORS = 1; // 1 while the process is out of file descriptors (descriptor_watch.ts)

/**
 * Shared memory for a process's gate: its connection count, whether it is out of descriptors,
 * and its address table.
 */
export function createGateBuffers(): { active: SharedArrayBuffer; addresses: SharedArrayBuffer } {
  return {
    active: new SharedArrayBuffer(8),
    addresses: AddressTable.create(ADDRESS_TABLE_SLOTS).buffer,
  };
}

/**
 * Tells every thread's gate that the process is out of file descriptors (or no longer is):
 * while it is, each new connection is closed at once and counted as `rejectedNoDescriptors`.
 *
 * @param buffers The process's gate buffers.
 * @param out Whether it is out of descriptors.
 */
export function setOutOfDescriptors(
  buffers: { active: SharedArrayBuffer },
  out: boolean,
): void {
  Atomics.store(new Int32Array(buffers.active), NO_DESCRIPTORS, out ? 1 : 0);
}

/** Bytes the address table costs per process, for the README and the start log. */
export const ADDRESS_TABLE_BYTES = ADDRESS_TABLE_SLOTS * (BYTES_PER_ADDRESS + 4);

/** One thread's view of its process's gate. */
export class ConnectionGate {
  readonly #active: Int32Array;
  readonly #table: AddressTable;
  readonly #stats: Float64Array;
  #config!: ServeConfig;
  #allow!: CidrList;
  #deny!: CidrList;
  #proxyFrom: CidrList | null = null;
  #limits!: AddressLimits;
  /** Each new connection's address is read into these words: nothing is made per accept. */
  readonly #key: IpWords = [0, 0, 0, 0];

  /**
   * @param buffers From {@linkcode createGateBuffers}, shared by the process's threads.
   * @param config The configuration in force.
   * @param stats This thread's stats row.
   */
  constructor(
    buffers: { active: SharedArrayBuffer; addresses: SharedArrayBuffer },
    config: ServeConfig,
    stats: Float64Array,
  ) {
    this.#active = new Int32Array(buffers.active);
    this.#table = new AddressTable(buffers.addresses);
    this.#stats = stats;
    this.configure(config);
  }

  /** Applies new limits to connections admitted from now on. */
  configure(config: ServeConfig): void {
    this.#config = config;
    this.#allow = new CidrList(config.allow, "allow");
    this.#deny = new CidrList(config.deny, "deny");
    this.#proxyFrom = config.proxyProtocol ? new CidrList(config.proxyFrom, "proxy-from") : null;
    // The kernel spreads an address's connections over every process; each enforces its share.
    const processes = config.processes;
    this.#limits = {
      maxPerAddress: Math.ceil(config.maxConnectionsPerAddress / processes),
      rate: config.connectionRate / processes,
      burst: Math.ceil((config.connectionBurst || config.connectionRate) / processes),
    };
  }

  /**
   * Decides whether a new connection may stay, and counts it if so.
   *
   * @param connection Its state; remembers the address for {@linkcode release}.
   * @param remoteAddress The client's address as the runtime reports it.
   * @param now The time in ms.
   * @returns Whether it was admitted; a refusal is counted by reason.
   */
  admit(connection: Connection, remoteAddress: string, now: number): boolean {
    // Out of descriptors, the process cannot serve it; closing it at once keeps the accept queue
    // draining rather than leave clients to their own timeouts (descriptor_watch.ts).
    if (Atomics.load(this.#active, NO_DESCRIPTORS) !== 0) {
      this.#stats[Stat.rejectedNoDescriptors]!++;
      return false;
    }
    const address = readIp(remoteAddress, this.#key) ? this.#key : null;
    const proxyFrom = this.#proxyFrom;
    if (proxyFrom !== null) {
      if (address !== null && proxyFrom.contains(address)) {
        // A trusted balancer: it holds a descriptor like anyone, but the client it speaks for is
        // checked against the lists and counted once its header names it.
        if (!this.#takeProcessSlot()) return false;
        const extra = connection.extra ??= new ConnectionExtra();
        extra.proxyPhase = PROXY_AWAIT;
        extra.fromBalancer = true;
        return this.#admitted(connection, now);
      }
      (connection.extra ??= new ConnectionExtra()).proxyPhase = PROXY_SNIFF;
    }
    if (!this.#admitAddress(connection, address, now, true)) return false;
    return this.#admitted(connection, now);
  }

  /**
   * Takes a read from a connection whose `proxyPhase` is not 0: a trusted balancer's header, or a
   * direct client's first read, which must not be a header.
   *
   * @param connection Its state.
   * @param chunk The bytes read.
   * @param now The time in ms.
   * @returns How many bytes at the start of `chunk` to skip before serving the rest;
   *   {@linkcode PROXY_WAIT} while a header is unfinished; {@linkcode PROXY_CLOSE} to close the
   *   connection now (counted by reason; the gate still counts it out in `release`).
   */
  proxyData(connection: Connection, chunk: Uint8Array, now: number): number {
    const extra = connection.extra!;
    if (extra.proxyPhase === PROXY_SNIFF) {
      extra.proxyPhase = 0;
      this.#dropExtra(connection, extra);
      if (!looksLikeProxyHeader(chunk)) return 0;
      this.#stats[Stat.rejectedProxyHeaderUntrusted]!++;
      return PROXY_CLOSE;
    }
    const offset = readProxyHeader(extra, chunk);
    if (offset === PROXY_MORE) return PROXY_WAIT;
    extra.proxyPhase = 0;
    extra.proxyHeld = null;
    if (offset === PROXY_INVALID) {
      extra.fromBalancer = false;
      this.#stats[Stat.rejectedProxyHeaderInvalid]!++;
      return PROXY_CLOSE;
    }
    const client = extra.proxyClient;
    // LOCAL and UNKNOWN: the balancer's own connection (a health check), served as itself.
    if (client === null) return offset;
    extra.fromBalancer = false;
    extra.proxyClient = null;
    this.#dropExtra(connection, extra);
    if (!this.#admitAddress(connection, client, now, false)) return PROXY_CLOSE;
    return offset;
  }

  /** Lets the rare part go once the PROXY protocol has nothing more to say about it. */
  #dropExtra(connection: Connection, extra: ConnectionExtra): void {
    if (!extra.fromBalancer && extra.secure === null) connection.extra = null;
  }

  /**
   * Counts a connection that the peer reset: a client's peer error, or nothing here for a
   * balancer's own connection (HAProxy ends its checks with a reset every `inter`), which
   * `release` counts as a health check instead, without a warning.
   *
   * @param connection Its state, or undefined for a socket reset before it was opened (Bun
   *   reports such a reset too): then its address says whether a trusted balancer made it.
   * @param remoteAddress The peer's address, for a socket with no state yet; undefined when even
   *   that was gone (Bun: reset before its open handler ran). With the PROXY protocol on, such a
   *   connection, which carried nothing, is counted as a health check: the balancer's checks
   *   (HAProxy resets each one at once) are where it comes from there, and a warning every
   *   `inter` would be noise; without it, a peer error.
   */
  peerError(connection: Connection | undefined, remoteAddress?: string): void {
    if (connection !== undefined) {
      if (connection.extra?.fromBalancer !== true) this.#stats[Stat.closedPeerError]!++;
      return;
    }
    const address = remoteAddress !== undefined && readIp(remoteAddress, this.#key)
      ? this.#key
      : null;
    const balancer = address === null
      ? this.#proxyFrom !== null
      : this.#proxyFrom?.contains(address) === true;
    this.#stats[balancer ? Stat.healthChecks : Stat.closedPeerError]!++;
  }

  #takeProcessSlot(): boolean {
    if (Atomics.add(this.#active, ACTIVE, 1) >= this.#config.maxConnections) {
      Atomics.sub(this.#active, ACTIVE, 1);
      this.#stats[Stat.rejectedMaxConnections]!++;
      return false;
    }
    return true;
  }

  #admitted(connection: Connection, now: number): true {
    connection.admitted = true;
    connection.openedAt = now;
    connection.lastActivityAt = now;
    return true;
  }

  /**
   * The allow and deny lists, then (with `takeSlot`) the process's cap, then the address table.
   * Without `takeSlot` the process slot was taken when the balancer connected, and stays taken
   * on a refusal until `release`.
   */
  #admitAddress(
    connection: Connection,
    address: IpWords | null,
    now: number,
    takeSlot: boolean,
  ): boolean {
    const stats = this.#stats;
    if (address !== null) {
      if ((!this.#allow.empty && !this.#allow.contains(address)) || this.#deny.contains(address)) {
        stats[Stat.rejectedDenied]!++;
        return false;
      }
    }
    if (takeSlot && !this.#takeProcessSlot()) return false;
    // Addresses are counted even while no per-address limit is set, so a limit turned on live
    // counts the connections already open.
    if (address !== null) {
      const verdict = this.#table.admit(address, this.#limits, now);
      if (verdict === OVER_ADDRESS_CAP || verdict === OVER_RATE) {
        if (takeSlot) Atomics.sub(this.#active, ACTIVE, 1);
        stats[verdict === OVER_RATE ? Stat.rejectedRate : Stat.rejectedAddressCap]!++;
        return false;
      }
      if (verdict === UNTRACKED) stats[Stat.untrackedAddresses]!++;
      else connection.addressSlot = this.#table.admittedSlot;
    }
    return true;
  }

  /**
   * Counts an admitted connection as closed (safe to call twice).
   *
   * @param connection Its state.
   * @param now The time in ms.
   */
  release(connection: Connection, now: number): void {
    if (!connection.admitted) return;
    connection.admitted = false;
    const extra = connection.extra;
    if (extra !== null && extra.fromBalancer) {
      extra.fromBalancer = false;
      this.#stats[Stat.healthChecks]!++;
    }
    Atomics.sub(this.#active, ACTIVE, 1);
    if (connection.addressSlot >= 0) this.#table.releaseSlot(connection.addressSlot, now);
    connection.addressSlot = -1;
  }

  /** Connections the whole process holds now. */
  get processConnections(): number {
    return Atomics.load(this.#active, ACTIVE);
  }
}
