/**
 * What measuring event-loop delay costs a serving thread (server/loop_delay.ts). Nothing runs per
 * message: a worker samples on its coarse clock's existing 50 ms timer. This prints (1) the time
 * of one sample (`tick`: a few stores into the stats row; one interval close, a sort of 20
 * numbers, per 20 ticks), (2) the CPU an otherwise idle thread spends over a few seconds with the
 * coarse clock alone and with the meter riding on it (what a worker does), and (3) with a timer of
 * the meter's own beside it (what it would cost without the ride). Prints figures; never fails.
 *
 *   bun bench/loop_delay_bench.ts
 *   deno run -A bench/loop_delay_bench.ts
 */
import { bench, do_not_optimize, run } from "mitata";
import { availableParallelism, cpus, release } from "node:os";
import process from "node:process";
import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { LOOP_DELAY_EVERY_MS, LoopDelayMeter } from "../server/loop_delay.ts";
import { TickingClock } from "../server/common/clock.ts";
import { createStatsBuffer, statsRow } from "../server/threads/thread_stats.ts";

console.log(
  `# tallyho event-loop delay meter on ${RUNTIME} ${RUNTIME_VERSION}, ${availableParallelism()} ` +
    `cores (${cpus()[0]?.model ?? "unknown cpu"}), kernel ${release()}, ${
      new Date().toISOString()
    }`,
);

const row = statsRow(createStatsBuffer(1), 0);
const meter = new LoopDelayMeter(row, 0);
let t = 0;
bench("tick(): one sample (an interval close every 20)", () => {
  t += LOOP_DELAY_EVERY_MS + (t % 7) * 0.3;
  meter.tick(t);
  do_not_optimize(row);
});
await run();

type Setup = "clock alone" | "clock + meter on its tick" | "clock + meter's own timer";

/** CPU ms this process used over `ms` of wall time, idle but for the timers of `setup`. */
async function cpuOver(ms: number, setup: Setup): Promise<number> {
  const live = new LoopDelayMeter(statsRow(createStatsBuffer(1), 0));
  const clock = new TickingClock(
    undefined,
    setup === "clock + meter on its tick" ? (now) => live.tick(now) : undefined,
  );
  if (setup === "clock + meter's own timer") live.start();
  const before = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const used = process.cpuUsage(before);
  live.stop();
  clock.stop();
  return (used.user + used.system) / 1000;
}

const SECONDS = 5;
for (let round = 0; round < 2; round++) {
  for (
    const setup of [
      "clock alone",
      "clock + meter on its tick",
      "clock + meter's own timer",
    ] as const
  ) {
    const used = await cpuOver(SECONDS * 1000, setup);
    console.log(
      `idle thread, ${setup}: ${(used / SECONDS).toFixed(2)} ms CPU per second ` +
        `(${(used / SECONDS / 10).toFixed(3)}% of one core)`,
    );
  }
}
