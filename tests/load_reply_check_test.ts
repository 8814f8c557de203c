/**
 * The load generator's reply parsing and number check, without sockets.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { LoadConnection } from "../load/load_connection.ts";
import { MALFORMED_LINE, OTHER_LINE, ReplyParser } from "../load/reply_parser.ts";
import { checkFailed, ReplyChecker } from "../load/reply_checker.ts";
import { SeenNumbers } from "../load/seen_numbers.ts";
import { decodeMessage, encodeMessage } from "../load/message_bytes.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

function parseAll(parser: ReplyParser, chunks: Uint8Array[]): number[] {
  const state = new LoadConnection(0, 1);
  const lines: number[] = [];
  for (const chunk of chunks) {
    const n = parser.parse(state, chunk);
    for (let i = 0; i < n; i++) lines.push(parser.out[i]!);
  }
  return lines;
}

test("reply parser reads N from every line, however the stream is cut into reads", () => {
  const stream = bytes("Hello World1\nHello World22\r\n+PONG\r\nHello World9007199254740991\n");
  const expected = [1, 22, OTHER_LINE, 9007199254740991];
  const parser = new ReplyParser("Hello World");
  assert.deepEqual(parseAll(parser, [stream]), expected);
  for (let cut = 1; cut < stream.length; cut++) {
    assert.deepEqual(
      parseAll(parser, [stream.subarray(0, cut), stream.subarray(cut)]),
      expected,
      `cut at ${cut}`,
    );
  }
  const oneByteAtATime = Array.from(stream, (b) => Uint8Array.of(b));
  assert.deepEqual(parseAll(parser, oneByteAtATime), expected);
});

test("reply parser tells other lines from malformed numbered ones", () => {
  const parser = new ReplyParser("Hello World");
  const cases: Array<[string, number]> = [
    ["+PONG\r\n", OTHER_LINE],
    ["Hello\n", OTHER_LINE],
    ["hello World1\n", OTHER_LINE],
    ["Hello World\n", MALFORMED_LINE],
    ["Hello World0\n", MALFORMED_LINE],
    ["Hello World012\n", MALFORMED_LINE],
    ["Hello World12x\n", MALFORMED_LINE],
    ["Hello World1\r2\n", MALFORMED_LINE],
    ["Hello World9007199254740992\n", MALFORMED_LINE],
    ["Hello World12345678901234567\n", MALFORMED_LINE],
  ];
  for (const [line, expected] of cases) {
    assert.deepEqual(parseAll(parser, [bytes(line)]), [expected], JSON.stringify(line));
  }
});

test("reply check: a number on two connections is a repeat; one connection's own N is not", () => {
  const checker = new ReplyChecker();
  const a = new LoadConnection(0, 1);
  const b = new LoadConnection(1, 1);
  // Numbering by connection: a keeps 5, b keeps 6.
  for (let i = 0; i < 3; i++) checker.observe(a, 5);
  for (let i = 0; i < 3; i++) checker.observe(b, 6);
  assert.equal(checkFailed(checker.result()), false);
  // A third connection given 5 again.
  const c = new LoadConnection(2, 1);
  checker.observe(c, 5);
  const figures = checker.result();
  assert.equal(figures.repeats, 1);
  assert.deepEqual(figures.repeatExamples, [5]);
  assert.equal(figures.numbered, 7);
  assert.equal(checkFailed(figures), true);
});

test("reply check: numbering by message must rise on each connection", () => {
  const checker = new ReplyChecker();
  const a = new LoadConnection(0, 1);
  for (const n of [1, 2, 3, 7, 9]) checker.observe(a, n);
  assert.equal(checkFailed(checker.result()), false);
  checker.observe(a, 8); // smaller than the one before
  assert.equal(checker.result().decreasing, 1);
  const b = new LoadConnection(1, 1);
  for (const n of [20, 21, 21]) checker.observe(b, n); // advanced, then repeated
  assert.equal(checker.result().mixed, 1);
  checker.observe(b, OTHER_LINE);
  checker.observe(b, MALFORMED_LINE);
  assert.equal(checker.result().other, 1);
  assert.equal(checker.result().malformed, 1);
});

test("seen numbers: merging two threads' sets finds exactly the numbers both saw", () => {
  const one = new SeenNumbers();
  const two = new SeenNumbers();
  for (let n = 1; n <= 10_000; n++) one.add(n);
  for (let n = 9_990; n <= 20_000; n += 2) two.add(n);
  two.add(2 ** 52 + 3); // far away: its own page
  assert.equal(one.add(77), true, "a second add is a repeat");
  const merged = new SeenNumbers();
  const repeats: number[] = [];
  merged.merge(one.pages, (n) => repeats.push(n));
  assert.equal(repeats.length, 0);
  const count = merged.merge(two.pages, (n) => repeats.push(n));
  assert.deepEqual(repeats, [9990, 9992, 9994, 9996, 9998, 10000]);
  assert.equal(count, 6);
  assert.equal(merged.distinct, 10_000 + 5_006 - 6 + 1);
});

test("seen numbers: past its page limit it counts numbers as untracked instead of growing", () => {
  const seen = new SeenNumbers({ maxPages: 2 });
  seen.add(1);
  seen.add(5000);
  seen.add(1_000_000);
  assert.equal(seen.pages.size, 2);
  assert.equal(seen.untracked, 1);
  assert.throws(() => new SeenNumbers({ maxPages: 0 }), RangeError);
});

test("load message escapes turn into bytes and back", () => {
  assert.deepEqual(decodeMessage("PING\\r\\n"), bytes("PING\r\n"));
  assert.deepEqual(decodeMessage("a\\x00\\t\\\\"), Uint8Array.of(97, 0, 9, 92));
  assert.equal(encodeMessage(decodeMessage("PING\\r\\n")), "PING\\r\\n");
  assert.throws(() => decodeMessage("\\q"), /unknown escape.*got "\\\\q"/);
  assert.throws(() => decodeMessage("\\x4"), /bad \\x escape/);
});
