/**
 * The capped admin server on its own: a newcomer takes the slot of a silent connection at once,
 * a connection with no request head or gone idle is closed in time, keep-alive requests and a request head split over
 * many writes still work, and stop() leaves nothing behind.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { serveAdminHttp } from "../server/adapters/mod.ts";
import { AddressInUseError } from "../server/host/address_in_use_error.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A raw connection that records what it received and when it was closed. */
class Raw {
  received = "";
  closedAt: number | null = null;
  readonly openedAt = Date.now();
  readonly socket: Socket;
  readonly ready: Promise<void>;

  constructor(port: number) {
    this.socket = connect({ port, host: "127.0.0.1" });
    this.ready = new Promise((resolve) => this.socket.once("connect", () => resolve()));
    this.socket.on("data", (chunk: Buffer) => (this.received += chunk.toString("latin1")));
    this.socket.on("error", () => {});
    this.socket.on("close", () => (this.closedAt = Date.now()));
  }

  async waitClosed(timeoutMs: number): Promise<number | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.closedAt === null && Date.now() < deadline) await sleep(10);
    return this.closedAt === null ? null : this.closedAt - this.openedAt;
  }

  async waitFor(text: string, count: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.split(text).length - 1 < count) {
      if (Date.now() > deadline) throw new Error(`no ${count} x ${text} in ${this.received}`);
      await sleep(10);
    }
  }
}

function adminDirs(): string[] {
  return readdirSync(tmpdir()).filter((name) => name.startsWith("tallyho-admin-"));
}

const handler = (request: Request) => new Response(`ok ${new URL(request.url).pathname}\n`);

test("capped admin HTTP gives a newcomer the place of the oldest silent connection at once and closes silent ones after the head timeout", async () => {
  // A TMPDIR of this test's own, so other servers on the machine cannot change the count.
  const savedTmp = process.env.TMPDIR;
  const privateTmp = mkdtempSync(join(tmpdir(), "tallyho-cap-test-"));
  process.env.TMPDIR = privateTmp;
  const dirsBefore = adminDirs().length;
  const server = await serveAdminHttp(handler, {
    maxConnections: 3,
    maxReading: 3,
    reserve: 0,
    perSource: 3,
    headTimeoutMs: 1500,
    idleTimeoutMs: 3000,
  });
  try {
    // Three that never send a byte fill the places of connections not read yet.
    const held = [new Raw(server.port), new Raw(server.port), new Raw(server.port)];
    await Promise.all(held.map((raw) => raw.ready));
    const deadline = Date.now() + 1000;
    while (server.counts().open < 3 && Date.now() < deadline) await sleep(10);
    assert.equal(server.counts().open, 3);
    const newcomer = new Raw(server.port);
    await newcomer.ready;
    const oldestClosed = await held[0]!.waitClosed(1000);
    assert.ok(
      oldestClosed !== null && oldestClosed < 1000,
      `the oldest silent connection gave up its place at once: ${oldestClosed} ms`,
    );
    assert.equal(held[0]!.received, "", "and got nothing from the server");
    newcomer.socket.write("GET /after HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await newcomer.waitFor("ok /after", 1, 2000);
    assert.equal(server.counts().evicted, 1);
    assert.equal(server.counts().refusedOverCap, 0);
    for (const raw of held.slice(1)) {
      const after = await raw.waitClosed(3000);
      assert.ok(
        after !== null && after >= 1400 && after < 2500,
        `silent one closed after ${after} ms`,
      );
    }
    assert.equal(server.counts().timedOut, 2);
    newcomer.socket.destroy();
    const empty = Date.now() + 1000;
    while (server.counts().open > 0 && Date.now() < empty) await sleep(10);
    assert.equal(server.counts().open, 0);
  } finally {
    await server.stop();
  }
  try {
    assert.equal(adminDirs().length, dirsBefore, "stop() removes the private socket directory");
  } finally {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    rmSync(privateTmp, { recursive: true, force: true });
  }
});

test("capped admin HTTP closes a slowly trickled request head, keeps a keep-alive client served", async () => {
  const server = await serveAdminHttp(handler, {
    maxConnections: 4,
    headTimeoutMs: 500,
    idleTimeoutMs: 800,
  });
  try {
    // A head sent one byte every 100 ms never completes within 500 ms.
    const slow = new Raw(server.port);
    await slow.ready;
    const head = "GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: aaaaaaaaaaaaaaaa\r\n\r\n";
    for (let i = 0; i < head.length && slow.closedAt === null; i++) {
      slow.socket.write(head[i]!);
      await sleep(100);
    }
    const slowClosed = await slow.waitClosed(1000);
    assert.ok(slowClosed !== null && slowClosed < 1500, `trickled head closed after ${slowClosed}`);
    assert.doesNotMatch(slow.received, /ok \/slow/);

    // Three requests on one connection, the head split over writes, 300 ms apart: served.
    const kept = new Raw(server.port);
    await kept.ready;
    for (let i = 1; i <= 3; i++) {
      kept.socket.write(`GET /k${i} HTTP/1.1\r\nHo`);
      await sleep(20);
      kept.socket.write(`st: 127.0.0.1\r\n\r`);
      await sleep(20);
      kept.socket.write(`\n`);
      await kept.waitFor("ok /k", i, 2000);
      await sleep(300);
    }
    assert.equal(kept.closedAt, null, "still open while it keeps talking");
    const idleClosed = await kept.waitClosed(2000);
    assert.ok(idleClosed !== null, "closed once idle for 800 ms");
  } finally {
    await server.stop();
  }
});

test("capped admin HTTP reports a busy port as AddressInUseError", async () => {
  const first = await serveAdminHttp(handler);
  try {
    await assert.rejects(
      () => serveAdminHttp(handler, { port: first.port }),
      (error: Error) =>
        error instanceof AddressInUseError && error.message.includes(`:${first.port}`),
    );
  } finally {
    await first.stop();
  }
});

test("capped admin HTTP counts out every client that vanishes mid-request, 10 rounds of 50 beside 20 requests", async () => {
  const server = await serveAdminHttp(handler, { maxConnections: 1000, maxReading: 1000 });
  try {
    for (let round = 0; round < 10; round++) {
      const abrupt = Array.from({ length: 50 }, (_, i) => {
        const raw = new Raw(server.port);
        // Some vanish before sending, some mid-head, some right after a full request.
        const text = ["", "GET /x HT", "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"][i % 3]!;
        raw.ready.then(() => {
          if (text) raw.socket.write(text);
          raw.socket.destroy();
        });
        return raw.ready;
      });
      const fetches = Array.from(
        { length: 20 },
        (_, i) => fetch(`http://127.0.0.1:${server.port}/f${i}`).then((r) => r.text()),
      );
      await Promise.all(abrupt);
      const texts = await Promise.all(fetches);
      assert.deepEqual(texts, Array.from({ length: 20 }, (_, i) => `ok /f${i}\n`));
    }
    // fetch's pooled keep-alive connections stay open; the abrupt ones must all be gone.
    const deadline = Date.now() + 2000;
    while (server.counts().open > 20 && Date.now() < deadline) await sleep(20);
    assert.ok(server.counts().open <= 20, `open after the rounds: ${server.counts().open}`);
    assert.equal(server.counts().refusedOverCap, 0);
  } finally {
    await server.stop();
  }
});

test("capped admin HTTP holds a connection answered 401 to the head timeout, a 200 one to the idle timeout", async () => {
  const guarded = (request: Request) =>
    request.headers.has("authorization")
      ? new Response("ok\n")
      : new Response("no\n", { status: 401, headers: { "www-authenticate": "Bearer" } });
  const server = await serveAdminHttp(guarded, { headTimeoutMs: 300, idleTimeoutMs: 1500 });
  try {
    const head = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    const refused = new Raw(server.port);
    const allowed = new Raw(server.port);
    await Promise.all([refused.ready, allowed.ready]);
    refused.socket.write(`${head}\r\n`);
    allowed.socket.write(`${head}Authorization: Bearer t\r\n\r\n`);
    await Promise.all([refused.waitFor(" 401 ", 1, 2000), allowed.waitFor(" 200 ", 1, 2000)]);
    const refusedAfter = await refused.waitClosed(1200);
    assert.ok(refusedAfter !== null, "the 401 one closed within the head timeout of idleness");
    assert.equal(allowed.closedAt, null, "the 200 one is still open");
    const allowedAfter = await allowed.waitClosed(3000);
    assert.ok(allowedAfter !== null && allowedAfter >= 1400, `200 one closed at ${allowedAfter}`);
  } finally {
    await server.stop();
  }
});
