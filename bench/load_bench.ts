/**
 * Micro-benchmarks of the load generator's own per-reply work: reading replies, recording a
 * latency, checking a number. They bound how many replies per second one client core can take
 * apart before the client, not the server, sets the pace. Prints figures; never fails.
 *
 *   bun bench/load_bench.ts
 *   deno run -A bench/load_bench.ts
 */
import { bench, do_not_optimize, group, run } from "mitata";
import { availableParallelism, cpus, release } from "node:os";
import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { LatencyHistogram } from "../load/latency_histogram.ts";
import { LoadConnection } from "../load/load_connection.ts";
import { ReplyChecker } from "../load/reply_checker.ts";
import { ReplyParser } from "../load/reply_parser.ts";
import { SeenNumbers } from "../load/seen_numbers.ts";

console.log(
  `# tallyho load generator on ${RUNTIME} ${RUNTIME_VERSION}, ${availableParallelism()} cores ` +
    `(${cpus()[0]?.model ?? "unknown cpu"}), kernel ${release()}, ${new Date().toISOString()}`,
);

let text100 = "";
for (let i = 0; i < 100; i++) text100 += `Hello World${1_000_000 + i}\n`;
const replies100 = new TextEncoder().encode(text100);
const pong100 = new TextEncoder().encode("+PONG\r\n".repeat(100));
const parser = new ReplyParser("Hello World");
const lineState = new LoadConnection(0, 1);
group("reading replies (100 per read)", () => {
  bench("ReplyParser.parse, 100 x Hello World<N>", () => {
    do_not_optimize(parser.parse(lineState, replies100));
  });
  bench("ReplyParser.parse, 100 x +PONG", () => {
    do_not_optimize(parser.parse(lineState, pong100));
  });
  bench("baseline: TextDecoder + split + parseInt, 100 x Hello World<N>", () => {
    const lines = new TextDecoder().decode(replies100).split("\n");
    let sum = 0;
    for (const line of lines) sum += parseInt(line.slice(11), 10) || 0;
    do_not_optimize(sum);
  });
});

const histogram = new LatencyHistogram();
// Latencies from 10 us to 100 ms, log-spread, made up front so the loop times only the record.
const latencies = Float64Array.from({ length: 4096 }, (_, i) => 10 ** (4 + 4 * ((i * 0.618) % 1)));
let at = 0;
group("recording a latency", () => {
  bench("LatencyHistogram.record", () => {
    histogram.record(latencies[at++ & 4095]!);
    do_not_optimize(histogram.count);
  });
  const samples: number[] = [];
  bench("baseline: push to an array (sorted later)", () => {
    samples.push(latencies[at++ & 4095]!);
    if (samples.length > 1_000_000) samples.length = 0;
    do_not_optimize(samples.length);
  });
});

const checker = new ReplyChecker();
const byMessage = new LoadConnection(1, 1);
const seen = new SeenNumbers();
const plainSet = new Set<number>();
let n = 1;
let m = 1;
let k = 1;
group("checking a number", () => {
  bench("ReplyChecker.observe (numbering by message)", () => {
    checker.observe(byMessage, n++);
    do_not_optimize(checker.figures.numbered);
  });
  bench("SeenNumbers.add (consecutive numbers)", () => do_not_optimize(seen.add(m++)));
  bench("baseline: Set<number>.add (cleared every 1M)", () => {
    if (plainSet.size >= 1_000_000) plainSet.clear();
    do_not_optimize(plainSet.add(k++));
  });
});

await run();
