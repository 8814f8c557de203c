/**
 * End to end: the admin API of a real server with 2 processes x 2 threads.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import type { HistorySample } from "../admin/stats_history.ts";
import { inBatches, LineClient, oneRequest, replyNumber } from "./_client.ts";
import { ADMIN_TOKEN, FAST_STATS, runTallyho, startTallyho, UNDER_TEST } from "./_server.ts";
import { promtoolCheck, skipOffCi, toolMissing } from "./_tools.ts";
import { waitUntil } from "./_wait.ts";

const JSON_BODY = { "content-type": "application/json" };

async function patch(server: Awaited<ReturnType<typeof startTallyho>>, body: unknown) {
  const response = await server.admin("/v1/config", {
    method: "PATCH",
    headers: JSON_BODY,
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

test(`[${UNDER_TEST}] admin: a PATCH of the greeting reaches every thread of every process at once`, async () => {
  const server = await startTallyho(["--processes", "2", "--threads", "2"], { env: FAST_STATS });
  try {
    const { status } = await patch(server, { greeting: "Howdy " });
    assert.equal(status, 200);
    // Right after the response: 200 fresh clients, spread by the kernel over the 4 threads.
    const replies = await inBatches(Array.from({ length: 200 }), 20, async () => {
      const client = await LineClient.connect(server.port);
      try {
        return await client.request("hi");
      } finally {
        client.close();
      }
    });
    for (const reply of replies) assert.match(reply, /^Howdy \d+$/);
    type Thread = { connectionsAccepted: number };
    // The stats once every connection is reported (each process reports every 50 ms here).
    const threads = await waitUntil(async () => {
      const stats = await (await server.admin("/v1/stats")).json();
      assert.equal(stats.processes.length, 2);
      const threads: Thread[] = stats.processes.flatMap((p: { threads: Thread[] }) => p.threads);
      const accepted = threads.reduce((sum, t) => sum + t.connectionsAccepted, 0);
      return accepted >= 200 && threads;
    }, { what: "the 200 connections in /v1/stats" });
    assert.equal(threads.length, 4);
    assert.ok(threads.filter((t) => t.connectionsAccepted > 0).length >= 3);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test(`[${UNDER_TEST}] admin: a connection held across a PATCH of the greeting keeps its N and gets the new greeting`, async () => {
  // Numbering by connection: the reply is encoded from the connection's number each time, so
  // what changes live is the greeting only (docs/protocol.md).
  const server = await startTallyho(["--threads", "1", "--framing", "line"]);
  const held = await LineClient.connect(server.port);
  try {
    const first = await held.request("a\n");
    assert.match(first, /^Hello World\d+$/);
    const n = replyNumber(first);
    assert.equal((await patch(server, { greeting: "Howdy " })).status, 200);
    held.send("b\nc\n");
    assert.deepEqual(await held.lines(3), [first, `Howdy ${n}`, `Howdy ${n}`]);
    // A new connection takes the next number with the new greeting.
    const fresh = await LineClient.connect(server.port);
    try {
      assert.equal(await fresh.request("d\n"), `Howdy ${n + 1}`);
    } finally {
      fresh.close();
    }
  } finally {
    held.close();
    assert.equal(await server.stop(), 0);
  }
});

test(`[${UNDER_TEST}] admin: threads and processes scale live, stats follow, numbers stay unique`, async () => {
  const server = await startTallyho([
    "--processes",
    "2",
    "--threads",
    "2",
    "--framing",
    "line",
    "--number-by",
    "message",
  ], { env: FAST_STATS });
  type Stats = { processes: { threads: unknown[] }[] };
  const stats = async (): Promise<Stats> => await (await server.admin("/v1/stats")).json();
  try {
    const seen: number[] = [];
    let stop = false;
    const load = (async () => {
      const deadline = Date.now() + 20_000;
      while (!stop && Date.now() < deadline) {
        const batch = await Promise.all(Array.from({ length: 10 }, () => oneRequest(server.port)));
        for (const n of batch) if (n !== null) seen.push(n);
      }
    })();
    assert.equal((await patch(server, { processes: 3, threads: 1 })).status, 200);
    // The stats follow: three processes of one thread each, once the new one has reported.
    await waitUntil(async () => {
      const { processes } = await stats();
      return processes.length === 3 && processes.every((p) => p.threads.length === 1);
    }, { what: "3 processes x 1 thread in /v1/stats" });
    assert.equal((await patch(server, { processes: 1, threads: 3 })).status, 200);
    await waitUntil(async () => (await stats()).processes.length === 1, {
      what: "1 process in /v1/stats",
    });
    // Retired threads keep their rows (their totals still count); three serve now.
    const info = await (await server.admin("/v1/config")).json();
    assert.equal(info.threads, 3);
    assert.equal(info.processes, 1);
    // Replies on both sides of the changes: the load runs on until it has 100 (a loaded machine
    // makes the changes quick and the load slow: 50 came during them once in CI).
    await waitUntil(() => seen.length > 100, { what: "100 replies across the changes" });
    stop = true;
    await load;
    assert.equal(new Set(seen).size, seen.length, "a number was repeated across the change");
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

// CI installs promtool (.ci/system_tools.sh); there its absence is a failure, not a skip.
test(`[${UNDER_TEST}] admin: /metrics passes promtool check metrics`, {
  skip: skipOffCi(toolMissing("promtool", "prometheus")),
}, async () => {
  const server = await startTallyho(["--processes", "2", "--threads", "2"], { env: FAST_STATS });
  try {
    assert.notEqual(await oneRequest(server.port), null);
    // Once the connection is reported, so the counters carry it.
    const text = await waitUntil(async () => {
      const response = await server.admin("/metrics");
      assert.equal(response.status, 200);
      const text = await response.text();
      return /^tallyho_connections_accepted_total\{[^}]*\} [1-9]\d*$/m.test(text) && text;
    }, { what: "the connection in /metrics" });
    assert.match(text, /^tallyho_connections_accepted_total\{process="\d",thread="\d"\} \d+$/m);
    promtoolCheck(text);
  } finally {
    await server.stop();
  }
});

test(`[${UNDER_TEST}] admin: pause makes /readyz 503 and refuses new connections while open ones are served`, async () => {
  const server = await startTallyho(["--processes", "2", "--threads", "2", "--framing", "line"]);
  try {
    const open = await LineClient.connect(server.port);
    const n = replyNumber(await open.request("a\n"));
    assert.equal((await server.admin("/v1/listener/pause", { method: "POST" })).status, 200);
    const ready = await fetch(`${server.adminUrl}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal((await ready.json()).state, "paused");
    const refused = await Promise.all(
      Array.from({ length: 20 }, () => oneRequest(server.port, "127.0.0.1", 1000)),
    );
    assert.deepEqual(
      refused.filter((r) => r !== null),
      [],
      "a new connection was served while paused",
    );
    assert.equal(replyNumber(await open.request("b\n")), n, "the open connection is still served");
    assert.equal((await server.admin("/v1/listener/resume", { method: "POST" })).status, 200);
    assert.equal((await fetch(`${server.adminUrl}/readyz`)).status, 200);
    assert.notEqual(await oneRequest(server.port), null, "accepting again");
    open.close();
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test(`[${UNDER_TEST}] admin: POST /v1/drain drains and exits 0 like SIGTERM`, async () => {
  const server = await startTallyho(["--threads", "1"]);
  const response = await server.admin("/v1/drain", { method: "POST" });
  assert.equal(response.status, 202, "accepted: the drain has begun");
  assert.equal(await server.exited, 0);
  assert.match(server.output(), /admin drain: draining/);
});

test(`[${UNDER_TEST}] admin: a non-loopback admin address without a token refuses to start`, async () => {
  const env = process.env.TALLYHO_ADMIN_TOKEN;
  assert.equal(env, undefined, "the test process has no token set");
  const { code, stderr } = await runTallyho(["--port", "0", "--admin", "0.0.0.0:0"]);
  assert.equal(code, 2);
  assert.equal(stderr.trim().split("\n").length, 2, stderr);
  assert.match(stderr, /0\.0\.0\.0/);
  const bad = await runTallyho(["--port", "0", "--admin", "nowhere"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /'admin' must be HOST:PORT .* got "nowhere"/);
});

test(`[${UNDER_TEST}] admin: a limit changed with PATCH applies to new connections, 422 names a bad one`, async () => {
  const server = await startTallyho(["--threads", "2", "--framing", "line"]);
  try {
    const held = await Promise.all(
      Array.from({ length: 6 }, () => LineClient.connect(server.port, "127.0.0.1", "127.0.0.20")),
    );
    const bad = await patch(server, { "max-connections-per-address": -1 });
    assert.equal(bad.status, 422);
    assert.equal(bad.json.error.field, "max-connections-per-address");
    assert.equal((await patch(server, { "max-connections-per-address": 3 })).status, 200);
    assert.equal(await oneRequest(server.port, "127.0.0.20"), null, "over the new cap");
    assert.notEqual(await oneRequest(server.port, "127.0.0.21"), null, "another address");
    for (const client of held) assert.ok(replyNumber(await client.request("still\n")) > 0);
    held.forEach((c) => c.close());
  } finally {
    await server.stop();
  }
});

test(`[${UNDER_TEST}] admin: log-level is live: at warn, routine lines stop; back at info, they return`, async () => {
  const server = await startTallyho(["--threads", "1"]);
  try {
    assert.equal((await patch(server, { "log-level": "warn" })).status, 200);
    const quietFrom = server.output().length;
    assert.equal((await patch(server, { greeting: "Quiet " })).status, 200);
    assert.equal((await server.admin("/v1/listener/pause", { method: "POST" })).status, 200);
    assert.equal((await server.admin("/v1/listener/resume", { method: "POST" })).status, 200);
    assert.equal((await patch(server, { "log-level": "info", greeting: "Loud " })).status, 200);
    const loud = await server.waitFor(/configuration generation 4: .*greeting "Quiet " -> "Loud "/);
    // The server logs in order: anything the quiet changes logged came before this line.
    assert.doesNotMatch(
      server.output().slice(quietFrom, loud.index),
      /configuration generation|listener paused/,
    );
    assert.equal((await patch(server, { "log-level": "loud" })).status, 422);
  } finally {
    assert.equal(await server.stop(), 0);
  }
  assert.match(server.output(), /tallyho: stopped; last number handed out/);
});

test(`[${UNDER_TEST}] admin: --admin-allowed-hosts lets Prometheus scrape by a DNS or service name; other names stay refused; a bad one is one line and exit 2`, async () => {
  const server = await startTallyho([
    "--admin-allowed-hosts",
    "tallyho-01.example.com, tallyho.monitoring.svc:9001",
  ]);
  try {
    const port = new URL(server.adminUrl!).port;
    // node:http, not fetch: fetch sets Host from the URL and will not send another.
    const { request } = await import("node:http");
    const status = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request({
          host: "127.0.0.1",
          port: Number(port),
          path: "/metrics",
          headers: { host, authorization: `Bearer ${ADMIN_TOKEN}` },
        }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
    assert.equal(await status(`tallyho-01.example.com:${port}`), 200, "the name on its port");
    assert.equal(await status("tallyho-01.example.com"), 200, "the name without a port");
    assert.equal(await status("tallyho.monitoring.svc:9001"), 200, "as given, with its port");
    assert.equal(await status(`tallyho.monitoring.svc:${port}`), 403, "that name on another port");
    assert.equal(await status(`evil.example:${port}`), 403, "any other name");
    assert.equal(await status(`127.0.0.1:${port}`), 200, "the admin address still");
  } finally {
    await server.stop();
  }
  const bad = await runTallyho(["serve", "--port", "0", "--admin-allowed-hosts", "a b/c"]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /^tallyho: 'admin-allowed-hosts' must be host names, .*got "a b\/c"$/m);
});

test(`[${UNDER_TEST}] admin: /v1/stats/history keeps each process's memory, CPU and restarts by index, across a restart and a removal`, async () => {
  const server = await startTallyho(["--processes", "2", "--threads", "1"], { env: FAST_STATS });
  type Sample = Pick<HistorySample, "processes">;
  const samples = async (): Promise<Sample[]> =>
    ((await (await server.admin("/v1/stats/history")).json()) as { samples: Sample[] }).samples;
  const measured = (sample: Sample, index: number) =>
    sample.processes.find((p) => p.index === index && p.rssBytes! > 0 && p.cpuSeconds! > 0);
  try {
    // A few samples (taken as often as the processes report here) with both processes measured.
    await waitUntil(
      async () => (await samples()).filter((s) => measured(s, 0) && measured(s, 1)).length >= 3,
      { what: "3 samples of /v1/stats/history with both processes' memory and CPU" },
    );
    const before = server.childPids().get(1)!;
    process.kill(before, "SIGKILL");
    await waitUntil(
      async () =>
        (await samples()).some((s) =>
          s.processes.some((p) => p.index === 1 && p.pid !== before && p.restarts === 1)
        ),
      { what: "process 1 restarted (a new pid, restarts 1) in the history" },
    );
    assert.equal((await patch(server, { processes: 1 })).status, 200);
    await waitUntil(
      async () => (await samples()).at(-1)!.processes.map((p) => p.index).join(",") === "0",
      { what: "only process 0 in the newest sample" },
    );
    const all = await samples();
    const ofOne = all.flatMap((s) => s.processes.filter((p) => p.index === 1));
    // Index 1's series goes on across its restart and stays after its removal.
    assert.equal(ofOne[0]!.pid, before, "the old pid's samples kept");
    assert.ok(ofOne.some((p) => p.pid !== before), "the new pid's samples under the same index");
    assert.ok(ofOne.every((p, i) => i === 0 || p.restarts! >= ofOne[i - 1]!.restarts!));
    assert.ok(
      all.every((s) => s.processes.every((p, i) => i === 0 || p.index > s.processes[i - 1]!.index)),
    );
  } finally {
    assert.equal(await server.stop(), 0);
  }
});
