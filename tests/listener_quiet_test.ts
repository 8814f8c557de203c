/**
 * Closing one SO_REUSEPORT listener while the port's others stay (an upgrade's old tree, a TLS
 * swap, a retired thread) under connect-per-request load from the native C client, which shares
 * no code with the server: no handshake completing at that moment is reset
 * (server/adapters/_quiet_listener.ts). Races many times: 1,500 closes. Without the filter this
 * machine's kernel reset about one connection in a hundred closes.
 *
 * On Bun the listener says its descriptor; on Deno it is found as the Deno adapter finds it
 * (server/adapters/_deno_listener_fd.ts), so this also proves that it is found every time.
 *
 * @module
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { nativeClientPath } from "../bench/native_client/native_client.ts";
import { quietListener } from "../server/adapters/_quiet_listener.ts";
import { listenWithDescriptor } from "../server/adapters/_deno_listener_fd.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";
import { enableMigration, migrateUnavailable } from "./_upgrade.ts";
import { sleep } from "./_wait.ts";

const CLOSES = 1500;

/** One SO_REUSEPORT listener answering each request with a number, on either runtime. */
interface Listener {
  readonly port: number;
  /** Its descriptor, or -1 where it is not known. */
  readonly fd: number;
  close(): void;
}
interface Socket {
  write(data: string): number;
}
interface BunListen {
  listen(options: {
    hostname: string;
    port: number;
    reusePort: boolean;
    socket: { data(socket: Socket): void; open(): void };
  }): { port: number; fd: number; stop(closeActiveConnections?: boolean): void };
}

const bun = (globalThis as unknown as { Bun?: BunListen }).Bun;
const RUNTIME = bun === undefined ? "deno" : "bun";
const SKIP = skipOffCi(migrateUnavailable() ?? toolMissing("cc", "gcc"));

/** A listener on Bun: `Bun.listen`, which says its descriptor. */
function bunListener(port: number, next: () => number): Listener {
  const socket = { data: (s: Socket) => void s.write(`Hello World${next()}\n`), open() {} };
  const listener = bun!.listen({ hostname: "127.0.0.1", port, reusePort: true, socket });
  return { port: listener.port, fd: listener.fd, close: () => listener.stop(false) };
}

/** The turns a process's threads take to listen (one thread here). */
const LISTEN_TURNS = { lock: new Int32Array(new SharedArrayBuffer(4)), holder: 1 };

/** A listener on Deno: `Deno.listen`, its descriptor found as the Deno adapter finds it. */
function denoListener(port: number, next: () => number): Listener {
  const { listener, fd } = listenWithDescriptor(
    LISTEN_TURNS,
    () => Deno.listen({ hostname: "127.0.0.1", port, reusePort: true, transport: "tcp" }),
  );
  const reply = new TextEncoder();
  const serve = async (conn: Deno.Conn) => {
    const buffer = new Uint8Array(256);
    try {
      while ((await conn.read(buffer)) !== null) {
        await conn.write(reply.encode(`Hello World${next()}\n`));
      }
    } catch {
      // Reset by the client: counted by the client, not here.
    } finally {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  (async () => {
    try {
      for (;;) void serve(await listener.accept());
    } catch {
      // Closed: its accept ends.
    }
  })();
  return { port: (listener.addr as Deno.NetAddr).port, fd, close: () => listener.close() };
}

test(
  `[${RUNTIME}] quiet listener: ${CLOSES} closes of SO_REUSEPORT listeners under the native client's connect-per-request load reset no connection`,
  { skip: SKIP, timeout: 120_000 },
  async () => {
    const restore = enableMigration();
    let number = 0;
    const next = () => ++number;
    const open = (port: number) => (bun ? bunListener : denoListener)(port, next);
    const listeners = [open(0)];
    const port = listeners[0]!.port;
    listeners.push(open(port));
    const client = spawn(nativeClientPath(), [
      "--port",
      String(port),
      "--workload",
      "connect",
      "--connections",
      "32",
      "--duration-ms",
      "60000",
    ], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    client.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const ended = new Promise<void>((resolve) => client.on("close", () => resolve()));
    let quieted = 0;
    try {
      await sleep(200);
      for (let i = 0; i < CLOSES; i++) {
        // A new listener joins before the oldest leaves, as in an upgrade.
        listeners.push(open(port));
        const oldest = listeners.shift()!;
        if (quietListener(oldest.fd)) quieted++;
        oldest.close();
        await sleep(1);
      }
      await sleep(200);
    } finally {
      client.kill("SIGTERM");
      await ended;
      for (const listener of listeners) listener.close();
      restore();
    }
    const report = JSON.parse(out) as {
      replies: number;
      errors: Record<string, number>;
      latencyUs: { p99: number; p999: number };
    };
    console.log(
      `[${RUNTIME}] ${CLOSES} listener closes (${quieted} quieted): ${report.replies} replies, ` +
        `errors ${JSON.stringify(report.errors)}; connect to reply p99 ` +
        `${(report.latencyUs.p99 / 1000).toFixed(1)} ms, p99.9 ${
          (report.latencyUs.p999 / 1000).toFixed(1)
        } ms`,
    );
    assert.deepEqual(report.errors, {}, "no connection reset or refused");
    assert.ok(report.replies > 0);
    assert.equal(quieted, CLOSES, "every listener had the filter attached");
  },
);
