/**
 * Side by side with the etcd tests (tests/etcd_numbers_test.ts): the same failover on Redis. A
 * primary and a replica on loopback, a tallyho server leasing from the primary through a TCP
 * proxy (the address a Sentinel-managed name or a virtual IP would give), under load from a
 * Python client that shares no code with it. Replication is asynchronous, so the replica can be
 * behind what the primary acknowledged; the test makes it so deterministically (replication cut
 * 2 s before the primary is killed, as a lagging link would leave it), then kills the primary with
 * `kill -9`, promotes the replica (`REPLICAOF NO ONE`) and points the proxy at it.
 *
 * What it shows: the running server refuses every lease from the promoted replica (the key went
 * backwards) instead of repeating numbers, `/readyz` answers 503 and no client sees a number
 * twice; a server started after the failover has no mark to compare with and hands out numbers
 * that were already answered (the test checks it does, as the docs warn). It prints how many numbers the replica had lost. etcd, which
 * commits each lease on a majority before answering, loses none (the etcd tests).
 */
import { record } from "./_recorder.ts";
import { testNeeding } from "./_tools.ts";
import assert from "node:assert/strict";
import { connect as tcpConnect, createServer, type Socket } from "node:net";
import { LineClient, replyNumber } from "./_client.ts";
import { skipRedis, startRedis } from "./_redis.ts";
import { FAST_STATS, readyzWithin, startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";
import { sleep, waitUntil } from "./_wait.ts";

const test = testNeeding(skipRedis);

/** A TCP proxy on 127.0.0.1 whose target can be switched, cutting every connection it holds. */
async function startProxy(target: number) {
  let to = target;
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = tcpConnect(to, "127.0.0.1");
    open.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    port,
    switchTo(next: number) {
      to = next;
      for (const socket of open) socket.destroy();
      open.clear();
    },
    close: () => {
      for (const socket of open) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test(`[${UNDER_TEST}] redis failover side by side: a promoted replica 2 s behind is refused (no number twice, /readyz 503); a server started after it repeats answered numbers`, async () => {
  const primary = await startRedis();
  const replica = await startRedis();
  const proxy = await startProxy(primary.port);
  const servers: TestServer[] = [];
  try {
    await replica.command("REPLICAOF", "127.0.0.1", String(primary.port));
    await waitUntil(
      async () =>
        /master_link_status:up/.test(String(await replica.command("INFO", "replication"))),
      { what: "the replica's link to the primary", timeoutMs: 30_000, everyMs: 50 },
    );
    const url = `redis://127.0.0.1:${proxy.port}/0?key=n`;
    const server = await startTallyho([
      "--processes",
      "2",
      "--threads",
      "1",
      "--framing",
      "line",
      "--number-by",
      "message",
      "--numbers",
      url,
    ], { env: FAST_STATS });
    servers.push(server);
    const enough = new AbortController();
    const load = record(server.port, 20, { pace: 4, keep: true, signal: enough.signal });
    // Under load: the key has moved on since the server's first leases.
    const first = Number(await primary.command("GET", "n"));
    await waitUntil(async () => Number(await primary.command("GET", "n")) > first, {
      what: "leases under load",
    });
    // The replica stops here: what the primary acknowledges from now on, it never gets.
    await replica.command("REPLICAOF", "NO", "ONE");
    await sleep(2000); // the lag: leases the replica will never have
    const onPrimary = Number(await primary.command("GET", "n"));
    await primary.kill();
    const onReplica = Number(await replica.command("GET", "n"));
    const lost = onPrimary - onReplica;
    console.log(
      `redis failover: the primary had leased up to ${onPrimary}, the promoted replica holds ` +
        `${onReplica}: ${lost} numbers lost`,
    );
    assert.ok(lost > 0, "the replica was behind");
    proxy.switchTo(replica.port);

    await server.waitFor(/refused a lease from redis .*the key holds \d+, but this server/, 10_000);
    assert.equal(
      await readyzWithin(server, 503, 5000),
      503,
      "/readyz once the held numbers ran out",
    );
    const info = await (await server.admin("/v1/info")).json();
    assert.ok(info.numbers.leasesRefused > 0, "leases refused, not served");
    // Until the clients meet it: connections closed for want of a number.
    await waitUntil(async () => {
      const { totals } = await (await server.admin("/v1/stats")).json();
      return totals.closedNumbersUnavailable > 0;
    }, { what: "clients refused for want of numbers" });
    enough.abort();
    const recorded = await load;
    assert.equal(recorded.repeats, 0, "the running server repeated a number");
    assert.ok(recorded.refused > 0, "clients were refused instead");
    assert.ok(recorded.max <= onPrimary);
    console.log(
      `redis failover: the running server refused ${info.numbers.leasesRefused} leases and ` +
        `${recorded.refused} clients; no number twice among ${recorded.numbers}`,
    );

    // A server that starts now has leased nothing: it cannot tell the key went backwards.
    const fresh = await startTallyho([
      "--framing",
      "line",
      "--number-by",
      "message",
      "--numbers",
      url,
    ]);
    servers.push(fresh);
    const client = await LineClient.connect(fresh.port);
    client.send("x\n".repeat(1000));
    const got = (await client.lines(1000, 5000)).map((line) => replyNumber(line));
    client.close();
    const answered = new Set(recorded.all);
    const repeated = got.filter((n) => answered.has(n)).length;
    console.log(
      `redis failover: a server started after it handed out ${got[0]}..${got.at(-1)}, ` +
        `${repeated} of those 1000 already answered before the failover`,
    );
    assert.ok(repeated > 0, "a server started after a lossy Redis failover repeats numbers");
  } finally {
    for (const server of servers) await server.stop("SIGKILL");
    await proxy.close();
    await primary.close();
    await replica.close();
  }
});
