/**
 * The etcd lease source in this process, against a real etcd: the URL rules, the run each lease
 * gets, `--first-number`, refusal of a key that is not an integer, a source that went backwards,
 * compare-and-swap races between many sources on one key (raced many times), failover to the
 * next member, and failing cleanly then recovering when no member answers.
 */
import { testNeeding } from "./_tools.ts";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import process from "node:process";
import { defaultConfig, resolveConfig } from "../server/config/resolve_config.ts";
import { EtcdLeaseError } from "../server/lease/sources/etcd/etcd_lease_error.ts";
import { EtcdLeaseSource } from "../server/lease/sources/etcd/etcd_lease_source.ts";
import { parseEtcdUrl } from "../server/lease/sources/etcd/etcd_url.ts";
import { LeaseBehindError } from "../server/lease/lease_behind_error.ts";
import { ETCD_TLS, skipEtcd, startEtcd } from "./_etcd.ts";
import { freePort } from "./_ports.ts";
import { makeCertificates, skipOpenssl } from "./_certificates.ts";
import { readTlsFiles } from "../server/tls/tls_files.ts";
import { runtime } from "../server/adapters/mod.ts";

const test = testNeeding(skipEtcd);

test("etcd url: members, default port, IPv6, user and key are read", () => {
  const target = parseEtcdUrl("etcd://10.0.0.5:2380,10.0.0.6,[::1]:2381/tallyho/n%2F1");
  assert.deepEqual(target.members, [
    { host: "10.0.0.5", port: 2380, base: "http://10.0.0.5:2380" },
    { host: "10.0.0.6", port: 2379, base: "http://10.0.0.6:2379" },
    { host: "::1", port: 2381, base: "http://[::1]:2381" },
  ]);
  assert.equal(target.key, "tallyho/n/1");
  assert.equal(target.tls, false);
  assert.equal(target.username, null);
  const tls = parseEtcdUrl("etcds://ops@e1:2379/k");
  assert.equal(tls.tls, true);
  assert.equal(tls.username, "ops");
  assert.equal(tls.members[0]!.base, "https://e1:2379");
  assert.equal(tls.display, "etcds://ops@e1:2379/k");
});

test("etcd url: a password, no key, a query or a bad member is refused, never echoing a secret", () => {
  assert.throws(() => parseEtcdUrl("etcd://root:hunter2@h:2379/k"), (error: Error) => {
    assert.ok(error instanceof RangeError);
    assert.match(error.message, /--numbers-password-file/);
    assert.doesNotMatch(error.message, /hunter2/);
    return true;
  });
  assert.throws(() => parseEtcdUrl("etcd://h:2379"), /names no key/);
  assert.throws(() => parseEtcdUrl("etcd://h:2379/"), /names no key/);
  assert.throws(() => parseEtcdUrl("etcd://h/k?x=1"), /nothing after the key/);
  assert.throws(() => parseEtcdUrl("etcd://h:99999/k"), /"h:99999" is not HOST or HOST:PORT/);
  assert.throws(() => parseEtcdUrl("etcd://a,,b/k"), /"" is not HOST or HOST:PORT/);
  // A password typed where a port goes is not a port: never echoed (the Redis URL's rule).
  assert.throws(() => parseEtcdUrl("etcd://a:2379,b:hunter2/k"), (error: Error) => {
    assert.ok(error instanceof RangeError);
    assert.match(error.message, /got "etcd:\/\/a:2379,b…"/);
    assert.doesNotMatch(error.message, /hunter2/);
    return true;
  });
  assert.throws(() => parseEtcdUrl("etcd://a:2379,b:2379/k?x=1"), /got "etcd:\/\/a:2379,b:2379…"/);
});

test("etcd config: numbers takes an etcd URL, not with state; a CA file only with etcds://", () => {
  const base = defaultConfig(2);
  const url = "etcd://127.0.0.1:2379,127.0.0.1:22379/k";
  assert.equal(resolveConfig({ numbers: url }, base).numbers, url);
  assert.throws(() => resolveConfig({ numbers: url, state: "/tmp/s" }, base), /cannot both/);
  assert.throws(() => resolveConfig({ numbers: "etcd://h" }, base), /names no key/);
  assert.equal(
    resolveConfig({ numbers: "etcds://h/k", numbersCaFile: "/tmp/ca.pem" }, base).numbersCaFile,
    "/tmp/ca.pem",
  );
  assert.throws(
    () => resolveConfig({ numbers: "etcd://h/k", numbersCaFile: "/tmp/ca.pem" }, base),
    /'numbers-ca-file' is only used with a rediss:\/\/ or etcds:\/\/ \(TLS\) 'numbers' URL/,
  );
});

test("etcd source: runs follow one another from --first-number; the key holds the last leased, and a reopen continues above it", async () => {
  const etcd = await startEtcd(1);
  try {
    const source = await EtcdLeaseSource.open(etcd.url("n"), { firstNumber: 1000 });
    assert.equal(source.next, 1000);
    assert.equal(await source.lease(10), 1000);
    assert.equal(await source.lease(5), 1010);
    assert.equal(await etcd.get("n"), "1014", "the key holds the last number leased");
    const status = source.status();
    assert.equal(status.connected, true);
    assert.equal(status.leases, 2);
    assert.deepEqual(status.lastLease, { first: 1010, last: 1014 });
    assert.equal(status.member, `127.0.0.1:${etcd.clientPorts[0]}`);
    await source.close();
    // A lower --first-number never goes back; a higher one lifts the key in the same swap.
    const again = await EtcdLeaseSource.open(etcd.url("n"), { firstNumber: 1 });
    assert.equal(again.next, 1015);
    assert.equal(await again.lease(1), 1015);
    const raised = await EtcdLeaseSource.open(etcd.url("n"), { firstNumber: 5000 });
    assert.equal(await raised.lease(3), 5000);
    assert.equal(await etcd.get("n"), "5002");
  } finally {
    await etcd.close();
  }
});

test("etcd source: a key that is not an integer is refused, naming the key, at open and at a lease", async () => {
  const etcd = await startEtcd(1);
  try {
    const put = (value: string) =>
      fetch(`http://127.0.0.1:${etcd.clientPorts[0]}/v3/kv/put`, {
        method: "POST",
        body: JSON.stringify({ key: btoa("bad"), value: btoa(value) }),
      }).then((r) => r.text());
    await put("twelve");
    await assert.rejects(EtcdLeaseSource.open(etcd.url("bad")), (error: Error) => {
      assert.ok(error instanceof EtcdLeaseError);
      assert.match(
        error.message,
        /etcd key "bad" at etcd:\/\/127\.0\.0\.1:\d+\/bad holds "twelve"/,
      );
      assert.match(error.message, /not an integer/);
      return true;
    });
    await put("7");
    const source = await EtcdLeaseSource.open(etcd.url("bad"));
    await put("7.5");
    await assert.rejects(source.lease(1), /holds "7\.5", not an integer/);
    assert.equal(await etcd.get("bad"), "7.5", "the key is left as it is");
  } finally {
    await etcd.close();
  }
});

test("etcd source: a key below what this server leased is refused (went backwards), the key untouched", async () => {
  const etcd = await startEtcd(1);
  try {
    const source = await EtcdLeaseSource.open(etcd.url("n"));
    assert.equal(await source.lease(100), 1);
    await fetch(`http://127.0.0.1:${etcd.clientPorts[0]}/v3/kv/put`, {
      method: "POST",
      body: JSON.stringify({ key: btoa("n"), value: btoa("40") }),
    });
    await assert.rejects(source.lease(10, { above: 100 }), (error: Error) => {
      assert.ok(error instanceof LeaseBehindError);
      assert.match(
        error.message,
        /the key holds 40, but this server's mark is 100 /,
      );
      return true;
    });
    assert.equal(await etcd.get("n"), "40");
  } finally {
    await etcd.close();
  }
});

test("etcd source: 4 sources leasing at once on one key, raced 10 times: runs never overlap and leave no gap", async () => {
  const etcd = await startEtcd(1);
  try {
    for (let round = 0; round < 10; round++) {
      const key = `race${round}`;
      const sources = await Promise.all(
        Array.from({ length: 4 }, () => EtcdLeaseSource.open(etcd.url(key))),
      );
      const runs = (await Promise.all(sources.map(async (source, s) => {
        const got: [number, number][] = [];
        // Several leases in flight from each source too, as a supervisor with many processes.
        await Promise.all(Array.from({ length: 3 }, async () => {
          for (let i = 0; i < 8; i++) {
            const count = 1 + ((s + i) % 5);
            got.push([await source.lease(count), count]);
          }
        }));
        return got;
      }))).flat().sort((a, b) => a[0] - b[0]);
      let next = 1;
      for (const [first, count] of runs) {
        assert.equal(first, next, `round ${round}: a run starts at ${first}, expected ${next}`);
        next = first + count;
      }
      assert.equal(await etcd.get(key), String(next - 1));
      assert.equal(runs.length, 4 * 3 * 8);
    }
  } finally {
    await etcd.close();
  }
});

test("etcd source: a dead member is skipped; with none answering a lease fails cleanly, and it recovers when one is back", async () => {
  const etcd = await startEtcd(1);
  const dead = await freePort();
  const lines: string[] = [];
  try {
    const live = `127.0.0.1:${etcd.clientPorts[0]}`;
    const source = await EtcdLeaseSource.open(`etcd://127.0.0.1:${dead},${live}/n`, {
      leaseTimeoutMs: 1500,
      requestTimeoutMs: 500,
      log: (line) => lines.push(line),
    });
    assert.equal(source.status().member, live);
    assert.equal(await source.lease(5), 1);
    await etcd.stop(0);
    const started = performance.now();
    await assert.rejects(source.lease(5), (error: Error) => {
      assert.ok(error instanceof EtcdLeaseError);
      assert.match(
        error.message,
        /Cannot lease from etcd at etcd:\/\/.*ECONNREFUSED|Cannot lease from etcd/,
      );
      return true;
    });
    assert.ok(performance.now() - started < 4000, "a lease gives up within its bounded time");
    const down = source.status();
    assert.equal(down.connected, false);
    assert.equal(down.leaseErrors, 1);
    assert.ok(down.lastError !== null);
    assert.ok(lines.some((line) => /no etcd member .* answers/.test(line)), lines.join("\n"));
    await etcd.start(0);
    let first = 0;
    for (let i = 0; i < 50 && first === 0; i++) {
      first = await source.lease(5).catch(() => 0);
      if (first === 0) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(first, 6, "leasing resumed above the last run, without reopening");
    assert.equal(source.status().connected, true);
    assert.ok(lines.some((line) => /leasing from etcd .* again/.test(line)), lines.join("\n"));
  } finally {
    await etcd.close();
  }
});

test("etcd source: no member reachable at open stops the start with one line naming the URL", async () => {
  const port = await freePort();
  await assert.rejects(
    EtcdLeaseSource.open(`etcd://127.0.0.1:${port}/n`, { leaseTimeoutMs: 500 }),
    (error: Error) => {
      assert.ok(error instanceof EtcdLeaseError);
      assert.match(
        error.message,
        new RegExp(`^Cannot reach etcd at etcd://127\\.0\\.0\\.1:${port}/n: `),
      );
      return true;
    },
  );
});

test("etcd source: a user and its password from the file sign in; a wrong password stops the open naming the user, never the password", async () => {
  const etcd = await startEtcd(1);
  try {
    const ctl = (...args: string[]) =>
      new Promise<void>((resolve, reject) =>
        execFile(
          "etcdctl",
          ["--endpoints", `127.0.0.1:${etcd.clientPorts[0]}`, ...args],
          { env: { ...process.env, ETCDCTL_API: "3" } },
          (error, _out, stderr) => error ? reject(new Error(stderr)) : resolve(),
        )
      );
    await ctl("user", "add", "root:rootpw");
    await ctl("user", "add", "tallyho:s3cret");
    await ctl("role", "add", "numbers");
    await ctl("role", "grant-permission", "numbers", "readwrite", "n");
    await ctl("user", "grant-role", "tallyho", "numbers");
    await ctl("auth", "enable");
    const url = `etcd://tallyho@127.0.0.1:${etcd.clientPorts[0]}/n`;
    const source = await EtcdLeaseSource.open(url, { password: "s3cret" });
    assert.equal(await source.lease(7), 1);
    assert.equal(await source.lease(3), 8);
    await assert.rejects(EtcdLeaseSource.open(url, { password: "wrong" }), (error: Error) => {
      assert.ok(error instanceof EtcdLeaseError);
      assert.match(error.message, /refused user "tallyho" .*--numbers-password-file/);
      assert.doesNotMatch(error.message, /wrong|s3cret/);
      return true;
    });
    await assert.rejects(
      EtcdLeaseSource.open(`etcd://127.0.0.1:${etcd.clientPorts[0]}/n`),
      /refused \/v3\/kv\/range: etcdserver: user name is empty \(HTTP 400\): the cluster has authentication on; name a user in the URL/,
    );
  } finally {
    await etcd.close();
  }
});

test("etcd source: etcds:// with --numbers-ca-file leases over TLS from members a private CA signed; without the CA the open fails naming the member", async () => {
  const etcd = await startEtcd(1, { tls: true });
  try {
    const url = etcd.url("n");
    assert.match(url, /^etcds:\/\//);
    const source = await EtcdLeaseSource.open(url, {
      caFile: ETCD_TLS.ca,
      firstNumber: 5,
      tlsFetch: runtime.tlsFetch,
    });
    assert.equal(await source.lease(3), 5);
    assert.equal(source.status().member, `127.0.0.1:${etcd.clientPorts[0]}`);
    await assert.rejects(
      EtcdLeaseSource.open(url, { leaseTimeoutMs: 1000 }),
      (error: Error) => {
        assert.ok(error instanceof EtcdLeaseError);
        assert.match(
          error.message,
          /^Cannot reach etcd at etcds:\/\/127\.0\.0\.1:\d+\/n: 127\.0\.0\.1:\d+: /,
        );
        return true;
      },
    );
    await assert.rejects(
      EtcdLeaseSource.open(url, { caFile: "/nonexistent/ca.pem", tlsFetch: runtime.tlsFetch }),
      /Cannot read the etcd CA file \/nonexistent\/ca\.pem: no such file or directory \(ENOENT\)/,
    );
  } finally {
    await etcd.close();
  }
});

const testMutual = testNeeding(skipEtcd || skipOpenssl);

testMutual(
  "etcd source: etcds:// to members that ask for a client certificate (--client-cert-auth) leases with one their CA signed; without one, or with one another CA signed, the open fails saying the member refused it",
  async () => {
    const pki = await makeCertificates();
    const etcd = await startEtcd(1, { mutualTls: pki });
    try {
      const url = etcd.url("n");
      const files = (cert: string, key: string) => {
        const read = readTlsFiles(cert, key, { certFlag: "numbers-cert-file" });
        return { cert: read.cert, key: read.key, file: cert };
      };
      const source = await EtcdLeaseSource.open(url, {
        caFile: pki.ca,
        tlsFetch: runtime.tlsFetch,
        clientCertificate: files(pki.clientCert, pki.clientKey),
        firstNumber: 40,
      });
      assert.equal(await source.lease(5), 40);
      assert.equal(await source.lease(5), 45);
      assert.equal(await etcd.get("n"), "49", "etcdctl (with its own certificate) reads the mark");
      await source.close();

      await assert.rejects(
        EtcdLeaseSource.open(url, {
          caFile: pki.ca,
          leaseTimeoutMs: 3000,
          tlsFetch: runtime.tlsFetch,
        }),
        (error: Error) => {
          assert.ok(error instanceof EtcdLeaseError);
          assert.match(
            error.message,
            /^Cannot reach etcd at etcds:\/\/127\.0\.0\.1:\d+\/n: 127\.0\.0\.1:\d+: the member refused the TLS connection \(alert: bad ?certificate\): it asks for a client certificate; name one with --numbers-cert-file and --numbers-key-file$/i,
          );
          return true;
        },
      );
      await assert.rejects(
        EtcdLeaseSource.open(url, {
          caFile: pki.ca,
          tlsFetch: runtime.tlsFetch,
          clientCertificate: files(pki.strangerCert, pki.strangerKey),
          leaseTimeoutMs: 3000,
        }),
        (error: Error) => {
          assert.ok(error instanceof EtcdLeaseError);
          assert.match(
            error.message,
            /: the member refused the client certificate in \S+stranger\.pem \(alert: bad ?certificate\): it must be signed by a CA the members trust \(etcd's --trusted-ca-file\)/i,
          );
          return true;
        },
      );
      // The members' own certificate not trusted is told apart from the client's refused.
      await assert.rejects(
        EtcdLeaseSource.open(url, {
          clientCertificate: files(pki.clientCert, pki.clientKey),
          leaseTimeoutMs: 3000,
          tlsFetch: runtime.tlsFetch,
        }),
        /: the member's certificate is not trusted \(.+\): name the CA that signed it with --numbers-ca-file/,
      );
      await assert.rejects(
        EtcdLeaseSource.open(`etcd://127.0.0.1:${etcd.clientPorts[0]}/n`, {
          clientCertificate: files(pki.clientCert, pki.clientKey),
        }),
        /A client certificate \(\S+client\.pem\) was given for etcd:\/\/127\.0\.0\.1:\d+\/n, which is not TLS: write etcds:\/\//,
      );
    } finally {
      await etcd.close();
      pki.close();
    }
  },
);

test("etcd config: a client certificate needs its key (and the key its certificate), and only with etcds://", () => {
  const base = defaultConfig(2);
  const tls = "etcds://127.0.0.1:2379/k";
  const both = resolveConfig(
    { numbers: tls, numbersCertFile: "/c.pem", numbersKeyFile: "/k.pem" },
    base,
  );
  assert.equal(both.numbersCertFile, "/c.pem");
  assert.equal(both.numbersKeyFile, "/k.pem");
  assert.throws(
    () => resolveConfig({ numbers: tls, numbersCertFile: "/c.pem" }, base),
    /'numbers-cert-file' needs 'numbers-key-file' \(a client certificate and its key go together\): got "\/c\.pem" alone/,
  );
  assert.throws(
    () => resolveConfig({ numbers: tls, numbersKeyFile: "/k.pem" }, base),
    /'numbers-key-file' needs 'numbers-cert-file'/,
  );
  for (const numbers of ["etcd://h/k", "rediss://h:6380/0?key=k", null]) {
    assert.throws(
      () => resolveConfig({ numbers, numbersCertFile: "/c.pem", numbersKeyFile: "/k.pem" }, base),
      /'numbers-cert-file' is only used with an etcds:\/\/ \(TLS\) 'numbers' URL/,
    );
  }
});

test("etcd source: a request cut short by the lease's deadline does not hide the failure before it that said why", async () => {
  let calls = 0;
  // The first request fails at once with a reason; every later one hangs until it is aborted.
  const fetchStub = ((_input: unknown, init?: RequestInit) => {
    calls++;
    if (calls === 1) return Promise.reject(new TypeError("the first reason"));
    return new Promise<Response>((_resolve, reject) => {
      init?.signal?.addEventListener("abort", () => reject(new Error("aborted")));
    });
  }) as typeof fetch;
  await assert.rejects(
    EtcdLeaseSource.open("etcd://127.0.0.1:9/n", {
      fetch: fetchStub,
      requestTimeoutMs: 1000,
      leaseTimeoutMs: 300,
    }),
    (error: Error) => {
      assert.ok(error instanceof EtcdLeaseError);
      assert.equal(
        error.message,
        "Cannot reach etcd at etcd://127.0.0.1:9/n: 127.0.0.1:9: the first reason",
      );
      return true;
    },
  );
  assert.ok(calls >= 2, `the source tried again within the lease's time (${calls} requests)`);
});
