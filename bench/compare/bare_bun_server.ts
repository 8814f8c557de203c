/**
 * The ceiling of Bun: a raw `Bun.listen` that answers every line with `Hello World<N>`, one
 * counter for all replies, no framing state, no backpressure, no features.
 *
 *   bun bench/compare/bare_bun_server.ts PORT [--reuse-port]
 *
 * `--reuse-port` lets several of them share the port (SO_REUSEPORT), as tallyho's processes do:
 * the memory benchmark holds more connections than one process may have descriptors.
 */
import process from "node:process";

let n = 0;
const port = Number(process.argv[2] ?? 9000);
const reusePort = process.argv.includes("--reuse-port");
(globalThis as unknown as { Bun: { listen(options: unknown): unknown } }).Bun.listen({
  hostname: "127.0.0.1",
  port,
  reusePort,
  socket: {
    data(socket: { write(text: string): number }, chunk: Uint8Array) {
      let out = "";
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) {
        out += `Hello World${++n}\n`;
      }
      if (out.length > 0) socket.write(out);
    },
  },
});
console.log(`bare bun listening on 127.0.0.1:${port}`);
