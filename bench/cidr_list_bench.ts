/**
 * Micro-benchmark of the allow/deny check each new connection pays once: parsing the client's
 * address and testing it against a list of ten ranges (IPv4 and IPv6). Prints figures; never
 * fails.
 *
 *   bun bench/cidr_list_bench.ts
 *   deno run -A bench/cidr_list_bench.ts
 */
import { bench, do_not_optimize, group, run } from "mitata";
import { availableParallelism, cpus, release } from "node:os";
import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { CidrList } from "../server/limits/cidr_list.ts";
import { parseIp } from "../server/limits/ip_key.ts";

console.log(
  `# tallyho allow/deny check on ${RUNTIME} ${RUNTIME_VERSION}, ${availableParallelism()} cores ` +
    `(${cpus()[0]?.model ?? "unknown cpu"}), kernel ${release()}, ${new Date().toISOString()}`,
);

const ranges = [
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "100.64.0.0/10",
  "198.51.100.7",
  "203.0.113.0/24",
  "2001:db8::/32",
  "fc00::/7",
  "fe80::/10",
  "::1",
];
const list = new CidrList(ranges, "deny");

group("one connection's address against 10 ranges", () => {
  bench("IPv4, in no range (every range tried)", () => {
    const address = parseIp("198.51.100.8");
    return do_not_optimize(address !== null && list.contains(address));
  });
  bench("IPv4, in the first range", () => {
    const address = parseIp("10.1.2.3");
    return do_not_optimize(address !== null && list.contains(address));
  });
  bench("IPv4-mapped IPv6 (dual-stack listener), in no range", () => {
    const address = parseIp("::ffff:198.51.100.8");
    return do_not_optimize(address !== null && list.contains(address));
  });
  bench("IPv6, in no range", () => {
    const address = parseIp("2001:db9::8a2e:370:7334");
    return do_not_optimize(address !== null && list.contains(address));
  });
});

const v4 = parseIp("198.51.100.8")!;
const none = new CidrList([], "deny");
const v6 = parseIp("2001:db9::8a2e:370:7334")!;
group("the list check alone (address parsed already)", () => {
  bench("IPv4, in no range", () => do_not_optimize(list.contains(v4)));
  bench("IPv6, in no range", () => do_not_optimize(list.contains(v6)));
  bench("an empty list (the default)", () => do_not_optimize(none.contains(v4)));
});

await run({ colors: false });
