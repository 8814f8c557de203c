/**
 * End to end: chunk and line framing as a client sees them.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { test } from "node:test";
import { LineClient, replyNumber } from "./_client.ts";
import { startTallyho, UNDER_TEST } from "./_server.ts";

test(`[${UNDER_TEST}] chunk framing: a naive client's send gets one reply, and nothing comes before it`, async () => {
  const server = await startTallyho(["--threads", "2"]);
  try {
    const client = await LineClient.connect(server.port);
    // The server speaks only after the client does.
    assert.deepEqual(await client.lines(1, 300), []);
    assert.equal(await client.request("hi"), "Hello World1");
    assert.equal(await client.request("again, no newline"), "Hello World1");
    client.close();
    const second = await LineClient.connect(server.port);
    assert.equal(await second.request("x"), "Hello World2");
    second.close();
  } finally {
    await server.stop();
  }
});

test(`[${UNDER_TEST}] line framing: 1,000 pipelined lines in one write get 1,000 replies in order`, async () => {
  const server = await startTallyho([
    "--threads",
    "2",
    "--framing",
    "line",
    "--number-by",
    "message",
  ]);
  try {
    const client = await LineClient.connect(server.port);
    client.send("ping\n".repeat(1000));
    const lines = await client.lines(1000);
    assert.equal(lines.length, 1000);
    const numbers = lines.map((line) => replyNumber(line));
    for (let i = 1; i < numbers.length; i++) assert.equal(numbers[i], numbers[0]! + i);
    assert.deepEqual(await client.lines(1001, 300), lines, "no extra reply");
    client.close();
  } finally {
    await server.stop();
  }
});

test(`[${UNDER_TEST}] line framing: CRLF is one terminator and a line split across writes waits for its end`, async () => {
  const server = await startTallyho(["--threads", "1", "--framing", "line", "--greeting", "hey "]);
  try {
    const client = await LineClient.connect(server.port);
    assert.equal(await client.request("one\r\n"), "hey 1");
    client.send("tw");
    assert.deepEqual(await client.lines(2, 300), ["hey 1"], "no reply to half a line");
    client.send("o\r");
    assert.deepEqual(await client.lines(2, 300), ["hey 1"], "nor to a line ending in a lone CR");
    client.send("\nthree\n");
    assert.deepEqual(await client.lines(3), ["hey 1", "hey 1", "hey 1"]);
    client.close();
  } finally {
    await server.stop();
  }
});

test(`[${UNDER_TEST}] line framing: an over-long line closes only that connection`, async () => {
  const server = await startTallyho([
    "--threads",
    "2",
    "--framing",
    "line",
    "--max-line-bytes",
    "100",
  ]);
  try {
    const bystander = await LineClient.connect(server.port);
    assert.equal(await bystander.request("hello\n"), "Hello World1");
    const offender = await LineClient.connect(server.port);
    assert.equal(
      await offender.request("x".repeat(100) + "\n"),
      "Hello World2",
      "100 bytes is allowed",
    );
    offender.send("y".repeat(101));
    await offender.closedPromise;
    assert.equal(offender.closed, true);
    assert.equal(await bystander.request("still there?\n"), "Hello World1");
    const next = await LineClient.connect(server.port);
    assert.equal(await next.request("new\n"), "Hello World3");
    bystander.close();
    next.close();
  } finally {
    await server.stop();
  }
});

test(`[${UNDER_TEST}] binary garbage is just a message: NULs, invalid UTF-8 and newlines in chunks`, async () => {
  const server = await startTallyho([
    "--threads",
    "1",
    "--framing",
    "line",
    "--number-by",
    "message",
  ]);
  try {
    const client = await LineClient.connect(server.port);
    const garbage = new Uint8Array(4096);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) % 256;
    const expected = garbage.filter((b) => b === 10).length;
    client.send(garbage);
    client.send("\n");
    const lines = await client.lines(expected + 1);
    assert.equal(lines.length, expected + 1);
    assert.deepEqual(lines.map((l) => replyNumber(l)), lines.map((_, i) => i + 1));
    client.close();
  } finally {
    await server.stop();
  }
});

test(`[${UNDER_TEST}] a client that vanishes while its replies are written does not disturb others`, async () => {
  const server = await startTallyho([
    "--threads",
    "2",
    "--framing",
    "line",
    "--number-by",
    "message",
  ]);
  try {
    for (let i = 0; i < 20; i++) {
      const socket = connect({ port: server.port, host: "127.0.0.1" });
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.on("error", () => {});
      socket.write("x\n".repeat(50_000));
      socket.resetAndDestroy(); // RST while ~700 KB of replies are being written
    }
    const client = await LineClient.connect(server.port);
    const reply = await client.request("alive?\n");
    assert.ok(replyNumber(reply) >= 1);
    client.close();
  } finally {
    assert.equal(await server.stop(), 0, "server exits cleanly after peers vanished");
  }
});
