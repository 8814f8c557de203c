/**
 * Micro-benchmark of the clock reads a duration could be measured with. The hot path reads a
 * field of the thread's coarse clock (limits/timeouts.ts TickingClock), brought up to date by one
 * `monotonicNow()` every 50 ms, so the read's cost matters there only once per tick; it matters
 * per call in the lease keeper's check (every 10 ms) and the ledger's wait. Prints figures; never
 * fails.
 *
 *   bun bench/clock_bench.ts
 *   deno run -A bench/clock_bench.ts
 */
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { availableParallelism, cpus, release } from "node:os";
import process from "node:process";
import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { TickingClock } from "../server/common/clock.ts";
import { monotonicNow } from "../server/common/clock.ts";

console.log(
  `# tallyho clock reads on ${RUNTIME} ${RUNTIME_VERSION}, ${availableParallelism()} cores ` +
    `(${cpus()[0]?.model ?? "unknown cpu"}), kernel ${release()}, ${new Date().toISOString()}`,
);

const coarse = new TickingClock();

summary(() => {
  group("one clock read", () => {
    bench("monotonicNow() (performance.now() + offset)", () => do_not_optimize(monotonicNow()));
    bench("performance.now()", () => do_not_optimize(performance.now()));
    bench("baseline: Date.now() (wall clock, the old read)", () => do_not_optimize(Date.now()));
    bench("process.hrtime.bigint()", () => do_not_optimize(process.hrtime.bigint()));
    bench("process.hrtime()", () => do_not_optimize(process.hrtime()));
    bench("hot path: TickingClock.now (a field)", () => do_not_optimize(coarse.now));
  });
});

await run();
coarse.stop();
