/**
 * Micro-benchmarks of the PROXY protocol header parser (server/proxy_header.ts): what it costs a
 * balancer's connection to have its header read, whole and split, beside parsing the peer's
 * address string that every plain connection pays. Prints figures; never fails.
 *
 *   npx bun bench/proxy_header_bench.ts
 *   npx deno run -A bench/proxy_header_bench.ts
 */
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { availableParallelism, cpus, release } from "node:os";
import { parseIp } from "../server/limits/ip_key.ts";
import {
  looksLikeProxyHeader,
  type ProxyHeaderState,
  readProxyHeader,
} from "../server/proxy_header.ts";
import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";

console.log(
  `# tallyho PROXY header parse on ${RUNTIME} ${RUNTIME_VERSION}, ${availableParallelism()} cores ` +
    `(${cpus()[0]?.model ?? "unknown cpu"}), kernel ${release()}, ${new Date().toISOString()}`,
);

const v1 = new TextEncoder().encode("PROXY TCP4 203.0.113.7 10.0.0.1 40000 9000\r\nPING\r\n");
const v2 = new Uint8Array([
  ...[0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a],
  0x21,
  0x11,
  0x00,
  0x13,
  ...[203, 0, 113, 7, 10, 0, 0, 1, 0x9c, 0x40, 0x23, 0x28],
  ...[0x05, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef],
  ...new TextEncoder().encode("PING\r\n"),
]);
const fresh = (): ProxyHeaderState => ({
  proxyGot: 0,
  proxyNeed: 0,
  proxyHeld: null,
  proxyClient: null,
});
const plain = new TextEncoder().encode("PING\r\n");

summary(() => {
  group("one connection's header", () => {
    bench("v2 header, one read", () => do_not_optimize(readProxyHeader(fresh(), v2)));
    bench("v1 header, one read", () => do_not_optimize(readProxyHeader(fresh(), v1)));
    bench("v2 header, split in two reads at byte 10", () => {
      const state = fresh();
      readProxyHeader(state, v2.subarray(0, 10));
      return do_not_optimize(readProxyHeader(state, v2.subarray(10)));
    });
    bench("a direct client's first read checked (sniff)", () => {
      return do_not_optimize(looksLikeProxyHeader(plain));
    });
    bench("baseline: parseIp of the peer's address (every connection)", () => {
      return do_not_optimize(parseIp("203.0.113.7"));
    });
  });
});

await run();
