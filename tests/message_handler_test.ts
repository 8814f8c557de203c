/**
 * Unit: the message handler numbers and encodes a read's replies one bounded slice at a time,
 * takes a number only for a reply it encodes, and keeps a connection's replies in order.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultConfig, resolveConfig } from "../server/config/resolve_config.ts";
import { Connection } from "../server/numbering/connection.ts";
import { MessageHandler, SLICE_BYTES } from "../server/numbering/message_handler.ts";
import { NumberLedger } from "../server/numbering/number_ledger.ts";
import { createStatsBuffer, Stat, statsRow } from "../server/threads/thread_stats.ts";

const GREETING = "G".repeat(1024);

function handlerWith(options: Parameters<typeof resolveConfig>[0]) {
  const ledger = NumberLedger.create();
  ledger.grant(1, 256);
  const stats = statsRow(createStatsBuffer(1), 0);
  const config = resolveConfig({ framing: "line", ...options }, defaultConfig(1));
  return { handler: new MessageHandler(config, ledger, stats, 0), ledger, stats };
}

function numbersIn(bytes: Uint8Array, greeting: string): number[] {
  const text = new TextDecoder().decode(bytes);
  assert.ok(text.endsWith("\n"), "a slice ends with a whole reply");
  return text.slice(0, -1).split("\n").map((line) => {
    assert.ok(line.startsWith(greeting), `reply ${line.slice(0, 40)}`);
    return Number(line.slice(greeting.length));
  });
}

test("unit message handler: 64 KiB of newlines with a 1 KiB greeting is encoded a slice at a time, numbered only as encoded, in order", () => {
  const { handler, ledger, stats } = handlerWith({ numberBy: "message", greeting: GREETING });
  const connection = new Connection();
  const lines = 64 * 1024;
  let length = handler.handle(connection, new Uint8Array(lines).fill(0x0a));
  const seen: number[] = [];
  let slices = 0;
  while (length > 0) {
    assert.ok(length <= SLICE_BYTES, `a slice of ${length} bytes`);
    seen.push(...numbersIn(handler.output.subarray(0, length), GREETING));
    // Numbers are taken for what is encoded, never for the replies still owed.
    assert.equal(ledger.taken, seen.length, "numbers taken = replies encoded");
    assert.equal(seen.length + connection.owedReplies, lines);
    slices++;
    length = handler.next(connection);
  }
  assert.equal(length, 0);
  assert.equal(seen.length, lines);
  assert.ok(slices >= lines / (SLICE_BYTES / 1041), `${slices} slices`);
  for (let i = 0; i < seen.length; i++) assert.equal(seen[i], i + 1);
  assert.equal(stats[Stat.messages], lines);
  assert.equal(stats[Stat.replies], lines);
});

test("unit message handler: a slice never passes a cap smaller than 64 KiB, and holds one reply at least", () => {
  const { handler } = handlerWith({
    numberBy: "message",
    greeting: GREETING,
    maxPendingReplyBytes: 4096,
  });
  const connection = new Connection();
  let length = handler.handle(connection, new Uint8Array(100).fill(0x0a));
  const seen: number[] = [];
  while (length > 0) {
    assert.ok(length <= 4096, `a slice of ${length} bytes`);
    seen.push(...numbersIn(handler.output.subarray(0, length), GREETING));
    length = handler.next(connection);
  }
  assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i + 1));

  const { handler: tiny } = handlerWith({ greeting: GREETING, maxPendingReplyBytes: 1024 });
  const one = new Connection();
  const first = tiny.handle(one, new Uint8Array([0x0a, 0x0a]));
  assert.equal(first, GREETING.length + 2, "one reply, though it is longer than the cap");
  assert.equal(tiny.next(one), GREETING.length + 2);
  assert.equal(tiny.next(one), 0);
});

test("unit message handler: connection numbering repeats one number in bounded slices", () => {
  const { handler, ledger } = handlerWith({ numberBy: "connection" });
  const connection = new Connection();
  const lines = 20_000; // 14 bytes each: more than 4 slices
  let length = handler.handle(connection, new Uint8Array(lines).fill(0x0a));
  let replies = 0;
  while (length > 0) {
    assert.ok(length <= SLICE_BYTES);
    for (const n of numbersIn(handler.output.subarray(0, length), "Hello World")) {
      assert.equal(n, 1);
      replies++;
    }
    length = handler.next(connection);
  }
  assert.equal(replies, lines);
  assert.equal(ledger.taken, 1);
});

test("unit message handler: lines counted while a connection is blocked are answered after, in order", () => {
  const { handler, ledger } = handlerWith({ numberBy: "message" });
  const connection = new Connection();
  assert.equal(handler.receive(connection, new TextEncoder().encode("a\nb\nc")), 2);
  assert.equal(ledger.taken, 0, "receive takes no number");
  assert.equal(handler.receive(connection, new TextEncoder().encode("\nd\n")), 2);
  assert.equal(connection.owedReplies, 4);
  assert.equal(handler.backlogBytes(connection), 4 * (11 + 16 + 1));
  const length = handler.next(connection);
  assert.deepEqual(numbersIn(handler.output.subarray(0, length), "Hello World"), [1, 2, 3, 4]);
  assert.equal(handler.next(connection), 0);
});
