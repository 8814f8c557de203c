/**
 * The runtime's stdio channel (server/adapters/stdio_channel.ts and each adapter's), which a
 * serving child talks to its supervisor over: every line written in any chunking arrives once, in
 * order, and the end of stdin is seen. A real process on the runtime under test, through pipes.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { lineSourceOf } from "../server/adapters/stdio_channel.ts";
import { scriptCommand } from "./_target.ts";
import { ROOT, UNDER_TEST } from "./_server.ts";

test(`[${UNDER_TEST}] stdio channel: 2,000 lines written in odd chunks come back once each, in order, then the end`, async () => {
  const { cmd, argv } = scriptCommand(join(ROOT, "tests/fixtures/stdio_echo.ts"));
  const child = spawn(cmd, argv, { stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => (out += text));
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const text = Array.from(
    { length: 2000 },
    (_, i) => JSON.stringify({ i, pad: "x".repeat(i % 97) }) + "\n",
  )
    .join("");
  // Chunks that split lines and multi-byte-free JSON anywhere, with pauses between some.
  for (let at = 0, size = 1; at < text.length; at += size, size = (size * 7 + 3) % 4093 + 1) {
    child.stdin.write(text.slice(at, at + size));
    if (size % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  child.stdin.end();
  assert.equal(await exited, 0, out.slice(-500));
  const lines = out.trim().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual(lines.at(-1), { end: 2000 });
  const echoed = lines.slice(0, -1);
  assert.equal(echoed.length, 2000);
  echoed.forEach((line, i) => {
    assert.equal(line.seen, i + 1);
    assert.equal(line.message.i, i);
  });
});

test(`[${UNDER_TEST}] stdio channel: a listener that throws ends the process with its error, not as a quiet end of stdin`, () => {
  const { cmd, argv } = scriptCommand(join(ROOT, "tests/fixtures/stdio_echo.ts"), [
    "--throw-at",
    "3",
  ]);
  const input = Array.from({ length: 5 }, (_, i) => JSON.stringify({ i }) + "\n").join("");
  const run = spawnSync(cmd, argv, { input, encoding: "utf8", timeout: 30_000 });
  assert.notEqual(run.status, 0, `exit ${run.status}: ${run.stdout}`);
  assert.match(run.stderr, /a listener's bug at message 3/);
  assert.doesNotMatch(run.stdout, /"end"/, "taken for the end of stdin");
});

test("stdio channel: a source reads once a data listener is there, delivers to every listener, ends once", async () => {
  let reads = 0;
  let finish!: () => void;
  const source = lineSourceOf(async (onChunk) => {
    reads++;
    onChunk(new TextEncoder().encode("a"));
    await new Promise<void>((resolve) => (finish = resolve));
    onChunk(new TextEncoder().encode("b"));
    throw new Error("the pipe broke"); // ends the channel like a close
  });
  const got: string[] = [];
  let ends = 0;
  source.on("end", () => ends++);
  source.on("close", () => ends++);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(reads, 0, "read before anyone listened");
  source.on("data", (chunk) => got.push(`1${new TextDecoder().decode(chunk as Uint8Array)}`));
  source.on("data", (chunk) => got.push(`2${new TextDecoder().decode(chunk as Uint8Array)}`));
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(reads, 1);
  assert.deepEqual(got, ["1a", "2a"]);
  finish();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(got, ["1a", "2a", "1b", "2b"]);
  assert.equal(ends, 2, "each end listener once");
});
