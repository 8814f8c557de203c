/**
 * What a systemd notification costs tallyho (server/systemd/, issue 22), against the other way
 * to send one: the FFI sender's first use (loading libc, `socket(2)`), one `sendto(2)` of a
 * `STATUS=` line to a socket that a Python stand-in for systemd drains, and spawning
 * `systemd-notify --status=...` (what a program without an AF_UNIX datagram socket would do
 * instead). tallyho sends a few messages per start, reload and stop, and a status line at most
 * every 2 s. Prints figures; never fails.
 *
 *   bun bench/notify_bench.ts
 *   deno run -A bench/notify_bench.ts
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { RUNTIME, runtime, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { notifySocketAddress } from "../server/systemd/mod.ts";

console.log(
  `# tallyho systemd notification on ${RUNTIME} ${RUNTIME_VERSION}, ${availableParallelism()} ` +
    `cores (${cpus()[0]?.model ?? "unknown cpu"}), kernel ${release()}, ${
      new Date().toISOString()
    }`,
);

const dir = mkdtempSync(join(tmpdir(), "tallyho-notify-bench-"));
const path = join(dir, "notify");
// A receiver that drains as fast as it can, as systemd's manager does.
const receiver = spawn("python3", [
  "-c",
  "import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\n" +
  "s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,8<<20)\ns.bind(sys.argv[1])\n" +
  "print('ready',flush=True)\nwhile True: s.recv(4096)",
  path,
], { stdio: ["ignore", "pipe", "inherit"] });
await new Promise<void>((resolve) => receiver.stdout!.once("data", () => resolve()));

try {
  const opened = performance.now();
  const sender = runtime.openUnixDatagram(notifySocketAddress(path));
  console.log(
    `first use (load libc through FFI, socket(2)): ${(performance.now() - opened).toFixed(2)} ms`,
  );
  const message = new TextEncoder().encode(
    "STATUS=serving 1234 connections on 0.0.0.0:9000 (4 x 2, configuration generation 3); " +
      "last number 123456789",
  );
  // Bursts of 8, below the socket's queue (net.unix.max_dgram_qlen: 10 on some kernels, 512 by
  // default), with a pause for the receiver to drain: the sends timed are ones delivered.
  for (let round = 0; round < 3; round++) {
    let sent = 0;
    let refused = 0;
    let busy = 0;
    for (let burst = 0; burst < 250; burst++) {
      const started = performance.now();
      for (let i = 0; i < 8; i++) {
        try {
          sender.send(message);
          sent++;
        } catch {
          refused++;
        }
      }
      busy += performance.now() - started;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    console.log(
      `sendto through FFI, ${message.length} bytes: ${
        ((busy * 1000) / (sent + refused)).toFixed(2)
      } us ` +
        `each (${sent} delivered, ${refused} refused as the queue was full)`,
    );
  }
  sender.close();

  const tool = spawnSync("systemd-notify", ["--help"], { stdio: "ignore" });
  if (tool.error) {
    console.log("systemd-notify: not installed (apt-get install systemd): not measured");
  } else {
    const count = 50;
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      spawnSync("systemd-notify", ["--status=serving 1234 connections"], {
        env: { ...process.env, NOTIFY_SOCKET: path },
        stdio: "ignore",
      });
    }
    console.log(
      `spawning systemd-notify --status=...: ${
        ((performance.now() - started) / count).toFixed(2)
      } ms each ` +
        `(${count} runs)`,
    );
  }
} finally {
  receiver.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}
