/**
 * End to end: tallyho servers leasing from one key on a real 3-member etcd cluster on loopback,
 * loaded by a Python client that shares no code with them. Two servers x 2 processes never hand
 * out a number twice and each hands out only numbers from runs it leased (its log names each run;
 * etcd's own history, read with etcdctl, confirms every one); `kill -9` of the etcd leader under
 * load repeats nothing and leasing goes on; with two of three members stopped the servers serve
 * their held blocks, then refuse cleanly with `/readyz` 503, and resume without a restart once
 * the members are back; `kill -9` of everything and a restart continues above every number
 * answered before.
 */
import { record, type Recorded } from "./_recorder.ts";
import { testNeeding } from "./_tools.ts";
import assert from "node:assert/strict";
import process from "node:process";
import { LineClient, replyNumber } from "./_client.ts";
import { ETCD_TLS, skipEtcd, startEtcd, type TestEtcd } from "./_etcd.ts";
import { makeCertificates, skipOpenssl } from "./_certificates.ts";
import { chmodSync } from "node:fs";
import {
  FAST_STATS,
  isAlive,
  readyzWithin,
  runTallyho,
  startTallyho,
  type TestServer,
  UNDER_TEST,
} from "./_server.ts";
import { waitUntil } from "./_wait.ts";

const test = testNeeding(skipEtcd);

/**
 * The recorder at up to 5,000,000 numbers and a pace of 4, keeping every number, for at most
 * `seconds` or until `signal` ends it.
 */
const keepAll = (port: number, seconds: number, signal?: AbortSignal) =>
  record(port, seconds, { maxNumbers: 5_000_000, pace: 4, keep: true, ...signal && { signal } });

/**
 * Starts a server with `args` and `--first-number first` (kept in `servers` for the cleanup),
 * checks that its first two replies carry `first` and `first + 1`, and stops it cleanly.
 */
async function answersTwoFrom(first: number, args: string[], servers: TestServer[]): Promise<void> {
  const server = await startTallyho([
    "--framing",
    "line",
    "--number-by",
    "message",
    ...args,
    "--first-number",
    String(first),
  ]);
  servers.push(server);
  const client = await LineClient.connect(server.port);
  client.send("x\nx\n");
  const numbers = (await client.lines(2, 5000)).map((line) => replyNumber(line));
  client.close();
  assert.deepEqual(numbers, [first, first + 1]);
  assert.equal(await server.stop(), 0, server.output());
}

function serverArgs(etcd: TestEtcd, key: string): string[] {
  return [
    "--processes",
    "2",
    "--threads",
    "1",
    "--framing",
    "line",
    "--number-by",
    "message",
    "--numbers",
    etcd.url(key),
  ];
}

/** The runs a server logged it leased ("leased A..B from etcd member ..."), in its order. */
function loggedRuns(server: TestServer): { first: number; last: number }[] {
  return [...server.output().matchAll(/leased (\d+)\.\.(\d+) from etcd member \S+/g)]
    .map((m) => ({ first: Number(m[1]), last: Number(m[2]) }));
}

/**
 * Checks the promise: no number twice across servers, every number inside a run its own server
 * logged, and every logged run a change of the key in etcd's history (from the value before it),
 * claimed by one server only.
 */
async function checkNumbers(
  etcd: TestEtcd,
  key: string,
  servers: TestServer[],
  recorded: Recorded[],
): Promise<void> {
  for (const r of recorded) {
    assert.equal(r.repeats, 0, "a client saw a number twice");
    assert.equal(r.bad, 0);
  }
  const all = recorded.flatMap((r) => r.all);
  assert.equal(new Set(all).size, all.length, "two servers handed out the same number");

  const history = await etcd.history(key);
  const changes = new Map<number, number>(); // last number of a run -> value before it
  for (let i = 0; i < history.length; i++) {
    changes.set(Number(history[i]!.value), i === 0 ? 0 : Number(history[i - 1]!.value));
  }
  const claimed = new Set<number>();
  servers.forEach((server, s) => {
    const runs = loggedRuns(server).sort((a, b) => a.first - b.first);
    assert.ok(runs.length > 0, `server ${s} logged no lease`);
    for (const run of runs) {
      assert.equal(
        changes.get(run.last),
        run.first - 1,
        `server ${s}'s run ${run.first}..${run.last} is no change in etcd's history`,
      );
      assert.ok(!claimed.has(run.last), `run ending ${run.last} claimed twice`);
      claimed.add(run.last);
    }
    let i = 0;
    for (const n of recorded[s]!.all) {
      while (i < runs.length && runs[i]!.last < n) i++;
      assert.ok(
        i < runs.length && runs[i]!.first <= n,
        `server ${s} handed out ${n}, outside every run it leased`,
      );
    }
  });
}

/** A server of {@linkcode serverArgs} on key `n`, reporting its figures every 50 ms. */
function startServer(etcd: TestEtcd): Promise<TestServer> {
  return startTallyho(serverArgs(etcd, "n"), { env: FAST_STATS });
}

/** The replies a server has sent, as it last reported them. */
async function replies(server: TestServer): Promise<number> {
  return (await (await server.admin("/v1/stats")).json()).totals.replies;
}

/**
 * Waits until every server has sent at least `sent` replies (to the load) and logged at least
 * `runs` leases in all.
 */
async function servedAtLeast(
  servers: TestServer[],
  sent: number,
  runs: number,
  what: string,
): Promise<void> {
  const counts: number[] = [];
  await waitUntil(async () => {
    for (const [s, server] of servers.entries()) counts[s] = await replies(server);
    return servers.every((server, s) => counts[s]! >= sent && loggedRuns(server).length >= runs);
  }, {
    what: () =>
      `${what} (replies ${counts}; runs logged: ${servers.map((s) => loggedRuns(s).length)})`,
    timeoutMs: 15_000,
  });
}

/** Waits until every server has logged a lease after the ones counted in `before`. */
async function leasedAgain(servers: TestServer[], before: number[], what: string): Promise<void> {
  await waitUntil(() => servers.every((server, s) => loggedRuns(server).length > before[s]!), {
    what: () => `${what} (runs logged: ${servers.map((s) => loggedRuns(s).length)})`,
    timeoutMs: 15_000,
  });
}

test(`[${UNDER_TEST}] etcd: two servers x 2 processes on one key of a 3-member cluster, loaded at once: no number twice, each only from runs it leased`, async () => {
  const etcd = await startEtcd(3);
  const servers: TestServer[] = [];
  try {
    for (let i = 0; i < 2; i++) servers.push(await startServer(etcd));
    // Loaded at once until each server has leased from the key several times.
    const enough = new AbortController();
    const load = Promise.all(servers.map((server) => keepAll(server.port, 10, enough.signal)));
    await servedAtLeast(servers, 20_000, 4, "each server serving and leasing under load");
    enough.abort();
    const recorded = await load;
    for (const r of recorded) assert.ok(r.numbers > 10_000, `only ${r.numbers} numbers`);
    const info = await (await servers[0]!.admin("/v1/info")).json();
    assert.match(info.numbers.description, /^etcd etcd:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,/);
    assert.match(info.numbers.member, /^127\.0\.0\.1:\d+$/);
    assert.equal(info.numbers.connected, true);
    const metrics = await (await servers[0]!.admin("/metrics")).text();
    assert.match(
      metrics,
      /^tallyho_numbers_source_info\{kind="etcd",member="127\.0\.0\.1:\d+"\} 1$/m,
    );
    for (const server of servers) assert.equal(await server.stop(), 0, server.output());
    await checkNumbers(etcd, "n", servers, recorded);
  } finally {
    for (const server of servers) await server.stop("SIGKILL");
    await etcd.close();
  }
});

test(`[${UNDER_TEST}] etcd: kill -9 of the leader under load: a new leader, leasing goes on, no number twice`, async () => {
  const etcd = await startEtcd(3);
  const servers: TestServer[] = [];
  try {
    for (let i = 0; i < 2; i++) servers.push(await startServer(etcd));
    const loadStart = Date.now();
    const enough = new AbortController();
    const load = Promise.all(servers.map((server) => keepAll(server.port, 20, enough.signal)));
    await servedAtLeast(servers, 5_000, 2, "each server serving under load");
    const leader = await etcd.leader();
    const before = servers.map((s) => loggedRuns(s).length);
    const killSecond = Math.floor((Date.now() - loadStart) / 1000);
    await etcd.stop(leader, "SIGKILL");
    // Each server leases again after the kill (through whichever member leads now) ...
    await leasedAgain(servers, before, "a lease after the leader was killed");
    let elected = leader;
    await waitUntil(async () => (elected = await etcd.leader()) !== leader, {
      what: "a new leader",
      timeoutMs: 10_000,
    });
    assert.notEqual(elected, leader, "a new leader was elected");
    // ... and goes on after the old leader is back.
    await etcd.start(leader);
    await leasedAgain(
      servers,
      servers.map((s) => loggedRuns(s).length),
      "a lease after the old leader came back",
    );
    const stopSecond = Math.floor((Date.now() - loadStart) / 1000);
    enough.abort();
    const recorded = await load;
    for (const r of recorded) {
      // Served through the failover: every whole second from the kill to the end had numbers.
      assert.ok(
        r.per_second.slice(killSecond, stopSecond).every((n) => n > 0),
        `a silent second from ${killSecond} s to ${stopSecond} s: ${r.per_second}\n${
          servers.map((s) => s.output().replace(/^.*leased \d+\.\.\d+ from etcd.*\n/gm, ""))
            .join("\n----\n")
        }`,
      );
    }
    for (const server of servers) assert.equal(await server.stop(), 0, server.output());
    await checkNumbers(etcd, "n", servers, recorded);
  } finally {
    for (const server of servers) await server.stop("SIGKILL");
    await etcd.close();
  }
});

test(`[${UNDER_TEST}] etcd: two of three members stopped: held blocks served, then clean refusals and /readyz 503; started again: resumes without a restart`, async () => {
  const etcd = await startEtcd(3);
  const servers: TestServer[] = [];
  try {
    for (let i = 0; i < 2; i++) servers.push(await startServer(etcd));
    const children = servers.map((s) => [...s.childPids().values()]);
    const loadStart = Date.now();
    const enough = new AbortController();
    const load = Promise.all(servers.map((server) => keepAll(server.port, 30, enough.signal)));
    await servedAtLeast(servers, 5_000, 2, "each server serving under load");
    await etcd.stop(1, "SIGTERM");
    await etcd.stop(2, "SIGTERM");
    for (const server of servers) {
      assert.equal(await readyzWithin(server, 503, 8000), 503, "/readyz once out of numbers");
      await server.waitFor(/cannot lease \d+ numbers to process \d+: Cannot lease from etcd/, 8000);
    }
    const down = await (await servers[0]!.admin("/v1/info")).json();
    assert.equal(down.numbersAvailable, false);
    assert.equal(down.numbers.connected, false);
    assert.ok(down.numbers.leaseErrors > 0);
    assert.ok(down.numbers.lastError !== null);
    const metrics = await (await servers[0]!.admin("/metrics")).text();
    assert.match(metrics, /^tallyho_numbers_source_connected 0$/m);
    assert.match(metrics, /^tallyho_number_lease_errors_total [1-9]\d*$/m);
    // The clients meet it: connections closed for want of a number.
    for (const server of servers) {
      await waitUntil(async () => {
        const { totals } = await (await server.admin("/v1/stats")).json();
        return totals.closedNumbersUnavailable > 0;
      }, { what: "clients refused for want of numbers" });
    }
    await etcd.start(1);
    await etcd.start(2);
    for (const server of servers) {
      assert.equal(await readyzWithin(server, 200, 10_000), 200, "/readyz once etcd is back");
    }
    const backSecond = Math.floor((Date.now() - loadStart) / 1000);
    const replies = async (server: TestServer) =>
      (await (await server.admin("/v1/stats")).json()).totals.replies as number;
    const repliedBefore = await Promise.all(servers.map(replies));
    await leasedAgain(
      servers,
      servers.map((s) => loggedRuns(s).length),
      "a lease once etcd is back",
    );
    // And replies written since (the clients refused meanwhile reconnect at their own pace),
    // through the whole second after the one etcd came back in: the clients count seconds from
    // their own start, a little after loadStart.
    for (const [i, server] of servers.entries()) {
      await waitUntil(
        async () =>
          Date.now() - loadStart > (backSecond + 2) * 1000 &&
          await replies(server) > repliedBefore[i]!,
        { what: "replies once etcd is back" },
      );
    }
    enough.abort();
    const recorded = await load;
    for (const r of recorded) {
      assert.ok(r.refused > 0, "clients were refused once the held numbers ran out");
      assert.ok(
        r.per_second.slice(backSecond).some((n) => n > 0),
        `no service once etcd was back (${backSecond} s on): ${r.per_second}`,
      );
    }
    servers.forEach((server, s) => {
      assert.deepEqual([...server.childPids().values()], children[s], "no process restarted");
      assert.ok(isAlive(server.pid));
    });
    for (const server of servers) assert.equal(await server.stop(), 0, server.output());
    await checkNumbers(etcd, "n", servers, recorded);
  } finally {
    for (const server of servers) await server.stop("SIGKILL");
    await etcd.close();
  }
});

test(`[${UNDER_TEST}] etcd: kill -9 of every member and every tallyho process, all restarted: numbers continue above every number answered`, async () => {
  const etcd = await startEtcd(3);
  let servers: TestServer[] = [];
  try {
    for (let i = 0; i < 2; i++) servers.push(await startServer(etcd));
    const killed = new AbortController();
    const load = Promise.all(servers.map((server) => keepAll(server.port, 10, killed.signal)));
    await servedAtLeast(servers, 5_000, 2, "each server serving under load");
    const pids = servers.flatMap((s) => [s.pid, ...s.childPids().values()]);
    for (const pid of pids) process.kill(pid, "SIGKILL");
    for (let i = 0; i < 3; i++) await etcd.stop(i, "SIGKILL");
    killed.abort();
    const before = await load;
    const answered = Math.max(...before.map((r) => r.max));
    assert.ok(answered > 0);
    await waitUntil(() => !pids.some(isAlive), {
      what: "every killed process gone",
      timeoutMs: 2000,
    });
    for (let i = 0; i < 3; i++) await etcd.start(i);
    servers = [];
    for (let i = 0; i < 2; i++) servers.push(await startServer(etcd));
    const served = new AbortController();
    const again = Promise.all(servers.map((server) => keepAll(server.port, 10, served.signal)));
    await servedAtLeast(servers, 1_000, 1, "each restarted server serving under load");
    served.abort();
    const after = await again;
    for (const r of after) {
      assert.ok(r.numbers > 0);
      assert.ok(r.all[0]! > answered, `${r.all[0]} after ${answered} was answered`);
    }
    for (const server of servers) assert.equal(await server.stop(), 0, server.output());
  } finally {
    for (const server of servers) await server.stop("SIGKILL");
    await etcd.close();
  }
});

test(`[${UNDER_TEST}] etcd: etcds:// with --numbers-ca-file serves numbers over TLS; an unreachable cluster or a key that is not an integer stops the start with one line and exit 1`, async () => {
  const etcd = await startEtcd(1, { tls: true });
  const servers: TestServer[] = [];
  try {
    await answersTwoFrom(
      700,
      ["--numbers", etcd.url("n"), "--numbers-ca-file", ETCD_TLS.ca],
      servers,
    );

    const noCa = await runTallyho(["serve", "--port", "0", "--numbers", etcd.url("n")]);
    assert.equal(noCa.code, 1, noCa.stdout + noCa.stderr);
    assert.match(noCa.stderr, /^tallyho: Cannot reach etcd at etcds:\/\/127\.0\.0\.1:\d+\/n: /m);
  } finally {
    for (const server of servers) await server.stop("SIGKILL");
    await etcd.close();
  }
  const plain = await startEtcd(1);
  try {
    await fetch(`http://127.0.0.1:${plain.clientPorts[0]}/v3/kv/put`, {
      method: "POST",
      body: JSON.stringify({ key: btoa("n"), value: btoa("abc") }),
    });
    const bad = await runTallyho(["serve", "--port", "0", "--numbers", plain.url("n")]);
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr.trim(),
      `tallyho: etcd key "n" at ${plain.url("n")} holds "abc", not an integer high-water mark: ` +
        `refusing to guess where numbering stopped`,
    );
  } finally {
    await plain.close();
  }
});

const testMutual = testNeeding(skipEtcd || skipOpenssl);

testMutual(
  `[${UNDER_TEST}] etcd: etcds:// with --numbers-cert-file and --numbers-key-file serves numbers from members that ask for a client certificate; without one, with one another CA signed, or a key that is not the certificate's, serve and check stop with one line saying so`,
  async () => {
    const pki = await makeCertificates();
    const etcd = await startEtcd(1, { mutualTls: pki });
    const servers: TestServer[] = [];
    try {
      const tls = ["--numbers", etcd.url("n"), "--numbers-ca-file", pki.ca];
      const certificate = (cert: string, key: string) => [
        "--numbers-cert-file",
        cert,
        "--numbers-key-file",
        key,
      ];
      const check = (extra: string[]) =>
        runTallyho(["check", "--port", "0", "--admin", "off", ...tls, ...extra]);
      const client = certificate(pki.clientCert, pki.clientKey);
      await answersTwoFrom(900, [...tls, ...client], servers);
      assert.ok(Number(await etcd.get("n")) >= 901, "the key in etcd holds the run leased");

      const ok = await check(client);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(
        ok.stderr,
        /tallyho check: ok: .*numbers: etcd etcds:\/\/127\.0\.0\.1:\d+\/n, next number \d+/,
      );

      const none = await runTallyho(["serve", "--port", "0", "--admin", "off", ...tls]);
      assert.equal(none.code, 1, none.stdout + none.stderr);
      assert.match(
        none.stderr,
        /^tallyho: Cannot reach etcd at etcds:\/\/127\.0\.0\.1:\d+\/n: 127\.0\.0\.1:\d+: the member refused the TLS connection \(alert: bad ?certificate\): it asks for a client certificate; name one with --numbers-cert-file and --numbers-key-file$/im,
      );

      const checked = await check(certificate(pki.strangerCert, pki.strangerKey));
      assert.equal(checked.code, 2, checked.stdout + checked.stderr);
      assert.equal(checked.stdout, "");
      assert.match(
        checked.stderr.trim(),
        /^tallyho: Cannot reach etcd at etcds:\/\/127\.0\.0\.1:\d+\/n: 127\.0\.0\.1:\d+: the member refused the client certificate in \S+stranger\.pem \(alert: bad ?certificate\): it must be signed by a CA the members trust \(etcd's --trusted-ca-file\), unexpired, and allow client authentication\nRun 'tallyho --help' for usage\.$/i,
      );

      const wrongKey = await check(certificate(pki.clientCert, pki.strangerKey));
      assert.equal(wrongKey.code, 2, wrongKey.stdout + wrongKey.stderr);
      assert.match(
        wrongKey.stderr,
        /^tallyho: 'numbers-key-file' \S+stranger-key\.pem is not the key of the certificate in \S+client\.pem \(CN=client\): give the key the certificate was made for$/m,
      );

      // A key other users can read works, with the warning the admin token's file gets.
      chmodSync(pki.clientKey, 0o644);
      const open = await check(client);
      assert.equal(open.code, 0, open.stderr);
      assert.match(
        open.stderr,
        /^tallyho check: warning: the etcd client key file '\S+client-key\.pem' can be read or written by other users \(mode 0644\): run chmod 600 '\S+client-key\.pem'$/m,
      );
    } finally {
      for (const server of servers) await server.stop("SIGKILL");
      await etcd.close();
      pki.close();
    }
  },
);
