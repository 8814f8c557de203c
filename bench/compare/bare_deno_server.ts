/**
 * The ceiling of Deno: a raw `Deno.listen` with one read loop per connection that answers every
 * line with `Hello World<N>`, one counter for all replies, no features. Reads into 4 KiB, enough
 * for a batch of 100 pipelined requests.
 *
 *   deno run -A bench/compare/bare_deno_server.ts PORT [--reuse-port] [--read-bytes N]
 *
 * `--reuse-port` lets several of them share the port (SO_REUSEPORT; needs `--unstable-net`), as
 * tallyho's processes do; `--read-bytes` sizes each connection's read buffer (the memory
 * benchmark reads into 256 bytes, the size of the region each tallyho connection reads into).
 */
let n = 0;
const port = Number(Deno.args[0] ?? 9000);
const reusePort = Deno.args.includes("--reuse-port");
const readAt = Deno.args.indexOf("--read-bytes");
const readBytes = readAt === -1 ? 4096 : Number(Deno.args[readAt + 1]);
const encoder = new TextEncoder();

async function serve(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(readBytes);
  try {
    while (true) {
      const read = await conn.read(buffer);
      if (read === null) break;
      let out = "";
      for (let i = buffer.indexOf(10); i !== -1 && i < read; i = buffer.indexOf(10, i + 1)) {
        out += `Hello World${++n}\n`;
      }
      if (out.length > 0) {
        const bytes = encoder.encode(out);
        for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
      }
    }
  } catch {
    // A reset peer ends its connection only.
  } finally {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port, ...(reusePort ? { reusePort } : {}) });
console.log(`bare deno listening on 127.0.0.1:${port}`);
for await (const conn of listener) serve(conn);
