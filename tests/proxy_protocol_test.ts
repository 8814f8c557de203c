/**
 * The PROXY protocol end to end, with clients in Python that write the headers themselves: the
 * header's address is the client for the per-address cap and the deny list, LOCAL is served as
 * the balancer, a trusted peer without a header, a header from anyone else, an unfinished header
 * and fuzzed headers are each closed and counted, and close only their own connection.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { test } from "node:test";
import { FAST_STATS, startTallyho, UNDER_TEST } from "./_server.ts";
import { waitUntil } from "./_wait.ts";
import { runProxyClients, totals, v1Header, v2Header } from "./_proxy_clients.ts";

const BALANCER = "127.0.0.10";

test(`[${UNDER_TEST}] proxy protocol: the header's address is the client; bad headers close only their connection`, async () => {
  const server = await startTallyho([
    "--threads",
    "1",
    "--framing",
    "line",
    "--proxy-protocol",
    "--proxy-from",
    `${BALANCER}/32`,
    "--max-connections-per-address",
    "2",
    "--deny",
    "198.51.100.66/32",
    "--proxy-header-timeout",
    "500ms",
  ], { env: FAST_STATS });
  try {
    const port = server.port;
    // Fuzz: the v1 and v2 headers with one byte changed (kept only where that breaks them: the
    // first 12 bytes, a family or version byte), and random bytes after a signature's start.
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 0x1000000;
    const fuzzed: string[] = [];
    for (let i = 0; i < 30; i++) {
      const base = Buffer.from(i % 2 ? v2Header("203.0.113.50") : v1Header("203.0.113.50"), "hex");
      const at = Math.floor(random() * (i % 2 ? 14 : 5));
      base[at] = (base[at]! + 1 + Math.floor(random() * 254)) & 0xff;
      fuzzed.push(
        base.subarray(0, Math.max(1, Math.floor(random() * base.length) + 1)).toString("hex"),
      );
    }
    const result = await runProxyClients([
      { source: BALANCER, port, header: v1Header("203.0.113.1"), hold: true },
      { source: BALANCER, port, header: v2Header("203.0.113.1"), hold: true },
      { source: BALANCER, port, header: v1Header("203.0.113.1") }, // over the cap of 2
      { source: BALANCER, port, header: v2Header("203.0.113.2") }, // another client: served
      { source: BALANCER, port, header: v1Header("198.51.100.66") }, // denied
      { source: BALANCER, port, header: v2Header("LOCAL") }, // a health check
      { source: BALANCER, port }, // trusted, no header
      { source: "127.0.0.2", port, header: v1Header("203.0.113.9") }, // forged by a direct client
      { source: "127.0.0.2", port, header: v2Header("203.0.113.9") },
      { source: "127.0.0.2", port }, // a direct client: served as itself
      { source: BALANCER, port, header: v2Header("203.0.113.3"), split: 3 },
      { source: BALANCER, port, header: v1Header("203.0.113.4"), split: 4 }, // within the 500 ms
      { source: BALANCER, port, header: v2Header("203.0.113.5").slice(0, 20), silentMs: 2000 },
      ...fuzzed.map((header) => ({ source: BALANCER, port, header })),
    ]);
    console.log(JSON.stringify(result));
    const r = result.replies;
    const served = /^Hello World\d+$/;
    assert.match(r[0]!, served);
    assert.match(r[1]!, served);
    assert.equal(r[2], "", "a third connection for 203.0.113.1 is over its cap");
    assert.match(r[3]!, served, "203.0.113.2 has its own count");
    assert.equal(r[4], "", "198.51.100.66 is denied by the header's address");
    assert.match(r[5]!, served, "LOCAL is served as the balancer");
    assert.equal(r[6], "", "a trusted peer without a header is closed");
    assert.equal(r[7], "", "a v1 header from an untrusted address is refused");
    assert.equal(r[8], "", "a v2 header from an untrusted address is refused");
    assert.match(r[9]!, served);
    assert.match(r[10]!, served, "a v2 header 3 bytes at a time");
    assert.match(r[11]!, served, "a v1 header 4 bytes at a time");
    assert.equal(r[12], "closed", "an unfinished header is closed at the header timeout");
    for (const [i, reply] of r.slice(13).entries()) {
      assert.ok(reply === "" || served.test(reply), `fuzzed ${fuzzed[i]}: ${reply}`);
    }
    assert.deepEqual(
      result.heldAgain.map((line) => served.test(line)),
      [true, true],
      "the held connections are untouched by the others' failures",
    );
    // The supervisor gathers its children's figures every 50 ms here: wait for every connection.
    let figures = await totals(server.admin);
    // At most 5 s: the counts are asserted below either way.
    await waitUntil(
      async () => (figures = await totals(server.admin)).connectionsAccepted! >= r.length,
      { timeoutMs: 5000 },
    ).catch(() => {});
    const fuzzClosed = r.slice(13).filter((reply) => reply === "").length;
    assert.equal(figures.rejectedAddressCap, 1);
    assert.equal(figures.rejectedDenied, 1);
    assert.equal(figures.rejectedProxyHeaderUntrusted, 2);
    assert.equal(figures.rejectedProxyHeaderInvalid, 1 + fuzzClosed);
    assert.equal(figures.closedProxyHeaderTimeout, 1);
    const metrics = await (await server.admin("/metrics")).text();
    assert.match(
      metrics,
      /tallyho_connections_rejected_total\{[^}]*reason="proxy_header_untrusted"[^}]*\} 2/,
    );
  } finally {
    await server.stop();
  }
});

test(`[${UNDER_TEST}] proxy protocol: turned on live through PATCH, and refused without proxy-from`, async () => {
  const server = await startTallyho(["--threads", "1", "--framing", "line"]);
  try {
    const bad = await server.admin("/v1/config", {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json" },
      body: JSON.stringify({ "proxy-protocol": true }),
    });
    assert.equal(bad.status, 422, await bad.clone().text());
    assert.match(await bad.text(), /'proxy-protocol' needs 'proxy-from'/);
    const good = await server.admin("/v1/config", {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json" },
      body: JSON.stringify({ "proxy-protocol": true, "proxy-from": [`${BALANCER}/32`] }),
    });
    assert.equal(good.status, 200, await good.clone().text());
    const result = await runProxyClients([
      { source: BALANCER, port: server.port, header: v1Header("203.0.113.1") },
      { source: BALANCER, port: server.port },
      { source: "127.0.0.2", port: server.port, header: v1Header("203.0.113.1") },
    ]);
    assert.match(result.replies[0]!, /^Hello World\d+$/);
    assert.deepEqual(result.replies.slice(1), ["", ""]);
  } finally {
    await server.stop();
  }
});
