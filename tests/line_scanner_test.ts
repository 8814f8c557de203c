import assert from "node:assert/strict";
import { test } from "node:test";
import { LINE_TOO_LONG, type LineState, scanLines } from "../server/numbering/line_scanner.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const fresh = (): LineState => ({ pendingLineBytes: 0, pendingEndsWithCr: false });

test("line scanner counts every newline-ended line in one chunk", () => {
  const state = fresh();
  assert.equal(scanLines(bytes("a\nbb\n\nccc\n"), state, 10), 4);
  assert.equal(state.pendingLineBytes, 0);
});

test("line scanner keeps an unfinished line for the next read", () => {
  const state = fresh();
  assert.equal(scanLines(bytes("hel"), state, 10), 0);
  assert.equal(scanLines(bytes("lo"), state, 10), 0);
  assert.equal(state.pendingLineBytes, 5);
  assert.equal(scanLines(bytes("\nnext"), state, 10), 1);
  assert.equal(state.pendingLineBytes, 4);
});

test("line scanner treats CRLF as one terminator, also split across reads", () => {
  const limit = 3;
  const state = fresh();
  assert.equal(scanLines(bytes("abc\r\n"), state, limit), 1, "CR not counted against limit");
  assert.equal(scanLines(bytes("abc\r"), state, limit), 0, "pending CR not counted yet");
  assert.equal(scanLines(bytes("\n"), state, limit), 1);
  assert.equal(scanLines(bytes("abcd\r\n"), state, limit), LINE_TOO_LONG);
});

test("line scanner rejects a line over the limit, finished or not", () => {
  assert.equal(scanLines(bytes("12345\n"), fresh(), 4), LINE_TOO_LONG);
  assert.equal(scanLines(bytes("1234\n"), fresh(), 4), 1);
  const state = fresh();
  assert.equal(scanLines(bytes("123"), state, 4), 0);
  assert.equal(scanLines(bytes("45"), state, 4), LINE_TOO_LONG);
});
