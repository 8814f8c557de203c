/**
 * Readies a SO_REUSEPORT listener to be closed without resetting a handshake (Linux; Bun, and
 * Deno through its FFI with the descriptor _deno_listener_fd.ts finds).
 *
 * Closing a listener while the port's other listeners stay (an upgrade's old tree, a TLS swap, a
 * retired thread) resets a connection whose handshake completes at that very moment, even with
 * `net.ipv4.tcp_migrate_req = 1`: the final ACK is processed on another CPU, finds the listener
 * still listening (so the request is not migrated), builds the connection, and by the time it is
 * put in the accept queue the close has set the listener to TCP_CLOSE, so the kernel drops it
 * with a reset (`inet_csk_reqsk_queue_add` -> `inet_child_forget`, Linux 6.18; measured as one
 * reset in about 250,000 connect-per-request replies over 50 upgrades, and 54 in 4,400 closes of
 * plain Python listeners: a kernel race, not Bun's). Connections already queued, and handshakes
 * whose ACK comes after the close, do migrate.
 *
 * So before the close a classic BPF socket filter is attached that drops every segment but a
 * SYN: a final ACK (and the data behind it) for this listener is then dropped, not raced, and
 * the client's retransmission, after the close, finds the listener closed and is migrated to one
 * that stays (a delay of one retransmission, about 200 ms, for the handshakes under way in that
 * moment, instead of a reset). A short wait lets an ACK that passed the filter just before it was
 * attached reach the queue, which the close then migrates. Measured here: plain Python listeners
 * closed 4,400 times under the native client, 54 resets without the filter, 0 with it and a
 * 200 µs wait; tests/listener_quiet_test.ts, 1,500 closes of Bun listeners, 12 and 17 without,
 * 0 with 50 µs (its p99.9 connect-to-reply stayed under 130 ms either way); 50 upgrades of the
 * binary, 0 resets in 14 runs against 2 in 6 before, the longest wait a client saw per run up
 * from 20-30 ms to 206-223 ms (that retransmission).
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { monotonicNow } from "../common/clock.ts";
import { type BunFfi, LIBC_NAMES, openLibc } from "./_libc.ts";

const SOL_SOCKET = 1;
const SO_ATTACH_FILTER = 26;
/** How long an ACK past the filter may take to be queued; it takes microseconds. */
const SETTLE_MS = 0.05;

/**
 * `ldb [13]` (the TCP flags: a socket filter sees the segment from its TCP header);
 * `jset #0x02` (SYN) to accept, else drop.
 */
const PROGRAM = [
  [0x30, 0, 0, 13],
  [0x45, 0, 1, 0x02],
  [0x06, 0, 0, 0xffffffff],
  [0x06, 0, 0, 0],
] as const;

/** `setsockopt` with the option's value given by its address. */
type SetSockOpt = (
  fd: number,
  level: number,
  name: number,
  value: number | bigint,
  length: number,
) => number;

/** The slice of Deno's FFI used here, declared so that the module type-checks on Bun too. */
interface DenoFfi {
  dlopen(
    path: string,
    symbols: {
      setsockopt: { parameters: ["i32", "i32", "i32", "u64", "u32"]; result: "i32" };
    },
  ): { symbols: { setsockopt: SetSockOpt } };
  UnsafePointer: { of(view: ArrayBufferView): unknown; value(pointer: unknown): bigint };
  permissions: { querySync(descriptor: { name: "ffi" }): { state: string } };
}

let setsockopt: SetSockOpt | null | undefined;
/** `struct sock_fprog` and the program it points to, kept alive for the thread. */
let fprog: Uint8Array | null = null;
let fprogAddress: number | bigint = 0;
let filter: Uint8Array | null = null;

/** `setsockopt` and a way to take a buffer's address, from whichever runtime runs this. */
function openSetSockOpt(): { call: SetSockOpt; address(view: Uint8Array): number | bigint } {
  const deno = (globalThis as unknown as { Deno?: DenoFfi }).Deno;
  if (deno !== undefined && !("Bun" in globalThis)) {
    // Queried, never prompted for: a listener's close must not wait on a terminal.
    if (deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      throw new Error("no FFI access");
    }
    let lastError: unknown = null;
    for (const name of LIBC_NAMES) {
      try {
        // The address goes as a plain u64: the struct is ours, its bytes stay where they are.
        const { symbols } = deno.dlopen(name, {
          setsockopt: { parameters: ["i32", "i32", "i32", "u64", "u32"], result: "i32" },
        });
        const address = (view: Uint8Array) => deno.UnsafePointer.value(deno.UnsafePointer.of(view));
        return { call: symbols.setsockopt, address };
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  }
  const ffi = (import.meta as unknown as { require(id: string): BunFfi }).require("bun:ffi");
  const { libc } = openLibc<{ setsockopt: SetSockOpt }>(
    { setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" } },
    "a listener's socket filter",
  );
  return { call: libc.setsockopt, address: (view) => ffi.ptr(view) };
}

function load(): SetSockOpt | null {
  if (setsockopt !== undefined) return setsockopt;
  setsockopt = null;
  try {
    const { call, address } = openSetSockOpt();
    // Out-of-line buffers: their bytes stay where the kernel is told they are.
    filter = new Uint8Array(new ArrayBuffer(PROGRAM.length * 8));
    const instructions = new DataView(filter.buffer);
    PROGRAM.forEach(([code, jt, jf, k], i) => {
      instructions.setUint16(i * 8, code, true);
      instructions.setUint8(i * 8 + 2, jt);
      instructions.setUint8(i * 8 + 3, jf);
      instructions.setUint32(i * 8 + 4, k, true);
    });
    // struct sock_fprog { unsigned short len; struct sock_filter *filter; } on a 64-bit Linux.
    fprog = new Uint8Array(new ArrayBuffer(16));
    const header = new DataView(fprog.buffer);
    header.setUint16(0, PROGRAM.length, true);
    header.setBigUint64(8, BigInt(address(filter)), true);
    fprogAddress = address(fprog);
    setsockopt = call;
  } catch {
    // No FFI (no access on Deno, or no glibc): the listener is closed as before.
  }
  return setsockopt;
}

/**
 * Attaches the filter to the listening socket `fd` and waits a moment; the caller closes it
 * right after.
 *
 * @param fd The listener's descriptor.
 * @returns Whether the filter is attached (false without FFI, or when the kernel refused it).
 */
export function quietListener(fd: number): boolean {
  // Bun 1.4.5 says the descriptor (not in bun-types), Deno's is found (_deno_listener_fd.ts);
  // another version may not say it, or it may not be found.
  if (typeof fd !== "number" || fd < 0) return false;
  // Without migration the kernel resets whatever is under way on a listener that closes, so
  // holding its ACKs back only adds the handshakes begun in the wait to those reset (seen in a
  // container's own network namespace, where the setting starts at 0). Read at each close: the
  // operator may set it while the server runs.
  if (!migrationOn()) return false;
  const call = load();
  if (call === null || fprog === null) return false;
  if (call(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprogAddress, fprog.length) !== 0) return false;
  // A spin, not a timer: the close must follow in this turn, before anything else runs here.
  // (On Deno the descriptor itself closes a tick later, once the pending accept lets go of it:
  // the filter holds its ACKs back until then, which costs them the same retransmission.)
  const until = monotonicNow() + SETTLE_MS;
  while (monotonicNow() < until) { /* an ACK past the filter reaches the queue */ }
  return true;
}

/** Whether this network namespace moves a closing listener's connections to the port's others. */
function migrationOn(): boolean {
  try {
    return readFileSync("/proc/sys/net/ipv4/tcp_migrate_req", "utf8").trim() === "1";
  } catch {
    return false;
  }
}
