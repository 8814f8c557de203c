import assert from "node:assert/strict";
import { test } from "node:test";
import { ReplyEncoder } from "../server/numbering/reply_encoder.ts";

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

test("reply encoder writes greeting, exact digits and a newline", () => {
  const encoder = new ReplyEncoder("Hello World");
  for (
    const n of [1, 9, 10, 99, 100, 12345, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]
  ) {
    assert.equal(decode(encoder.encode(n)), `Hello World${n}\n`);
  }
});

test("reply encoder writes consecutive replies into one buffer at offsets", () => {
  const encoder = new ReplyEncoder("héllo ");
  const buffer = new Uint8Array(encoder.maxReplyBytes * 3);
  let offset = encoder.write(buffer, 0, 7);
  offset = encoder.write(buffer, offset, 4294967296);
  offset = encoder.write(buffer, offset, 9007199254740991);
  assert.equal(
    decode(buffer.subarray(0, offset)),
    "héllo 7\nhéllo 4294967296\nhéllo 9007199254740991\n",
  );
});

test("reply encoder's maxReplyBytes fits the largest number", () => {
  const encoder = new ReplyEncoder("x");
  assert.equal(encoder.encode(2 ** 53 - 1).length, encoder.maxReplyBytes);
});

test("reply encoder is exact for every digit count and across the int32 split at 2^31", () => {
  const encoder = new ReplyEncoder("");
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  for (let n = 1; n < 2 ** 53; n = n * 10 + 7) {
    for (const v of [n, n + 1, n * 3]) {
      if (v <= Number.MAX_SAFE_INTEGER) assert.equal(decode(encoder.encode(v)), `${v}\n`);
    }
  }
  for (
    const v of [2 ** 31 - 1, 2 ** 31, 2 ** 31 + 1, 1e9, 1e9 - 1, 2 ** 31 + 1e9, 5_000_000_000_000]
  ) {
    assert.equal(decode(encoder.encode(v)), `${v}\n`);
  }
  const long = new ReplyEncoder("g".repeat(40));
  assert.equal(decode(long.encode(123)), `${"g".repeat(40)}123\n`);
});
