/**
 * Micro-benchmarks of the per-message hot path: reply bytes, line scanning, taking a number and
 * a whole read through the message handler. Prints figures; never fails.
 *
 *   bun bench/hot_path_bench.ts
 *   deno run -A bench/hot_path_bench.ts
 */
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { availableParallelism, cpus, release } from "node:os";
import { defaultConfig, resolveConfig } from "../server/config/resolve_config.ts";
import { Connection } from "../server/numbering/connection.ts";
import { scanLines } from "../server/numbering/line_scanner.ts";
import { MessageHandler } from "../server/numbering/message_handler.ts";
import { ReplyEncoder } from "../server/numbering/reply_encoder.ts";
import { BLOCK_SIZE, NumberLedger } from "../server/numbering/number_ledger.ts";
import { createStatsBuffer, statsRow } from "../server/threads/thread_stats.ts";
import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";

console.log(
  `# tallyho hot path on ${RUNTIME} ${RUNTIME_VERSION}, ${availableParallelism()} cores ` +
    `(${cpus()[0]?.model ?? "unknown cpu"}), kernel ${release()}, ${new Date().toISOString()}`,
);

const encoder = new ReplyEncoder("Hello World");
const out = new Uint8Array(encoder.maxReplyBytes);
let n = 1_000_000;

group("reply bytes", () => {
  bench(
    "ReplyEncoder.write (into a reused buffer)",
    () => do_not_optimize(encoder.write(out, 0, n++)),
  );
  bench(
    "baseline: TextEncoder.encode(template string)",
    () => do_not_optimize(new TextEncoder().encode(`Hello World${n++}\n`)),
  );
});

/** A ledger kept supplied the way a process's lease keeper does, one grant per 256 blocks. */
function suppliedLedger(): NumberLedger {
  const ledger = NumberLedger.create();
  let next = 1;
  const top = () => {
    ledger.grant(next, 256);
    next += 256 * BLOCK_SIZE;
  };
  top();
  ledger.onStarved = top;
  return ledger;
}
const ledger = suppliedLedger();
// Tops the ledger up at each block boundary, outside the lookup being measured.
function takeLeased(): number {
  const position = ledger.reserve(1);
  if (position % BLOCK_SIZE === 0 && ledger.remaining < 128 * BLOCK_SIZE) ledger.onStarved!();
  return ledger.numberAt(position);
}
const plain = new BigInt64Array(new SharedArrayBuffer(8));
const plain32 = new Int32Array(new SharedArrayBuffer(4));
summary(() => {
  group("taking a number", () => {
    bench("leased: NumberLedger reserve + numberAt", () => do_not_optimize(takeLeased()));
    bench(
      "baseline: Atomics.add on BigInt64Array",
      () => do_not_optimize(Atomics.add(plain, 0, 1n)),
    );
    bench(
      "baseline: Atomics.add on Int32Array (wraps at 2^31)",
      () => do_not_optimize(Atomics.add(plain32, 0, 1)),
    );
  });
});

const lines100 = new TextEncoder().encode("ping\n".repeat(100));
const lineState = { pendingLineBytes: 0, pendingEndsWithCr: false };
group("line scanning", () => {
  bench(
    "scanLines, 100 lines in one read",
    () => do_not_optimize(scanLines(lines100, lineState, 65536)),
  );
});

const base = defaultConfig(1);
const stats = statsRow(createStatsBuffer(1), 0);
const chunkHandler = new MessageHandler(resolveConfig({}, base), suppliedLedger(), stats, 0);
const messageHandler = new MessageHandler(
  resolveConfig({ framing: "line", numberBy: "message" }, base),
  suppliedLedger(),
  stats,
  0,
);
const connection = new Connection();
const hi = new TextEncoder().encode("hi\n");
group("one read through MessageHandler", () => {
  bench(
    "chunk framing, connection numbering (1 reply)",
    () => do_not_optimize(chunkHandler.handle(connection, hi)),
  );
  bench(
    "line framing, message numbering, 100 lines (100 replies)",
    () => do_not_optimize(messageHandler.handle(new Connection(), lines100)),
  );
});

await run();
