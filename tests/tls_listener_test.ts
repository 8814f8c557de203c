/**
 * TLS on the listener: `openssl s_client` and the runtime's own TLS client get `Hello World<N>`
 * over a certificate made at test time (ECDSA P-256), a client that does not speak TLS is closed
 * without a reply, and a bad certificate, a key that is not the certificate's, or half the pair
 * stop the start with a message naming the flag (exit 2). Every test makes its certificates with
 * openssl: off CI they skip where it is missing.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import process from "node:process";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { runTallyho, startTallyho, UNDER_TEST } from "./_server.ts";
import { selfSignedCertificate, skipOpenssl } from "./_certificates.ts";
import { testNeeding } from "./_tools.ts";
import { waitUntil } from "./_wait.ts";
import { python } from "./_python.ts";
import { totals } from "./_proxy_clients.ts";
import { certificateNames, serverNameCheck } from "../server/server_names.ts";

const test = testNeeding(skipOpenssl);

/** A self-signed certificate for localhost and 127.0.0.1, valid 30 days, with CN=`name`. */
function makeCertificate(dir: string, name: string): { cert: string; key: string } {
  return selfSignedCertificate(dir, name, { days: 30, commonName: name });
}

function opensslAsk(port: number): Promise<string> {
  const child = spawn("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    "localhost",
    "-quiet",
  ], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString();
    // -quiet implies -ign_eof: s_client would wait for the server's close, so it is ended here.
    if (out.includes("\n")) child.kill("SIGTERM");
  });
  child.stdin.write("hi\n");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  return new Promise((resolve) =>
    child.on("close", () => {
      clearTimeout(timer);
      resolve(out.trim());
    })
  );
}

function runtimeAsk(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, ca, servername: "localhost" }, () => {
      socket.write("hi\n");
    });
    let out = "";
    socket.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes("\n")) {
        socket.end();
        resolve(out.trim());
      }
    });
    socket.on("error", reject);
    setTimeout(() => {
      socket.destroy();
      reject(new Error(`no reply over TLS: ${JSON.stringify(out)}`));
    }, 10_000);
  });
}

/** A plain-TCP client: what it reads before the server closes (or "open" after 5 s). */
function plainAsk(port: number): Promise<string> {
  return new Promise((resolve) => {
    // At least a TLS record header's 5 bytes, so the server can tell it is not TLS.
    const socket = tcpConnect(port, "127.0.0.1", () => socket.write("hello there\n"));
    let out = "";
    socket.on("data", (c: Buffer) => (out += c.toString("latin1")));
    socket.on("close", () => resolve(out));
    socket.on("error", () => {});
    setTimeout(() => {
      socket.destroy();
      resolve("open");
    }, 5_000);
  });
}

test(`[${UNDER_TEST}] tls: openssl s_client and the runtime's TLS client get Hello World; plain TCP is closed`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-tls-"));
  const { cert, key } = makeCertificate(dir, "localhost");
  chmodSync(key, 0o644);
  const server = await startTallyho([
    "--threads",
    "2",
    "--framing",
    "line",
    "--tls-cert",
    cert,
    "--tls-key",
    key,
  ]);
  try {
    assert.match(server.output(), /TLS with CN=localhost, valid until 20\d\d-/);
    assert.match(
      server.output(),
      /warning: the TLS key file .* can be read or written by other users \(mode 0644\): run chmod 600/,
    );
    const first = await opensslAsk(server.port);
    assert.match(first, /^Hello World\d+$/, "openssl s_client");
    // The "try it" command of docs/proxy-and-tls.md, as written there: it ends by itself.
    const tryIt = /^\(printf .*openssl s_client .*$/m.exec(
      readFileSync(new URL("../docs/proxy-and-tls.md", import.meta.url), "utf8"),
    )?.[0];
    assert.ok(tryIt !== undefined, "docs/proxy-and-tls.md has a '(printf ...' s_client command");
    const docs = spawnSync("sh", [
      "-c",
      tryIt.replace("127.0.0.1:9000", `127.0.0.1:${server.port}`),
    ], {
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(docs.signal, null, `the docs' command did not end by itself: ${docs.stderr}`);
    assert.match(docs.stdout.trim(), /^Hello World\d+$/, "the docs' s_client command");
    const second = await runtimeAsk(server.port, readFileSync(cert, "utf8"));
    assert.match(second, /^Hello World\d+$/, "the runtime's TLS client, verifying the certificate");
    assert.notEqual(first, second);
    const plain = await plainAsk(server.port);
    assert.ok(
      plain !== "open" && !plain.includes("Hello World"),
      `plain TCP got ${JSON.stringify(plain)}`,
    );
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`[${UNDER_TEST}] tls: a bad certificate, a key that is not its own, or half the pair stop the start (exit 2)`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-tls-"));
  const a = makeCertificate(dir, "a");
  const b = makeCertificate(dir, "b");
  const cases: Array<[string[], RegExp]> = [
    [["--tls-cert", a.key, "--tls-key", a.key], /'tls-cert' .*a\.key is not a PEM certificate/],
    [["--tls-cert", a.cert, "--tls-key", a.cert], /'tls-key' .*a\.crt is not a PEM private key/],
    [
      ["--tls-cert", a.cert, "--tls-key", b.key],
      /'tls-key' .*b\.key is not the key of the certificate in .*a\.crt/,
    ],
    [["--tls-cert", a.cert], /'tls-cert' needs 'tls-key'/],
    [
      ["--tls-cert", join(dir, "missing.crt"), "--tls-key", a.key],
      /Cannot read 'tls-cert' file .*missing\.crt: no such file or directory \(ENOENT\)/,
    ],
  ];
  try {
    for (const [args, message] of cases) {
      const { code, stderr } = await runTallyho([
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--admin",
        "off",
        ...args,
      ]);
      assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
      assert.match(stderr, message);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The subject a new client is served, as `openssl s_client` prints it. */
function servedSubject(port: number): string {
  const run = spawnSync("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    "localhost",
  ], { input: "", encoding: "utf8", timeout: 10_000 });
  return /subject=\s*CN\s*=\s*(\S+)/.exec(run.stdout)?.[1] ?? `none: ${run.stdout}${run.stderr}`;
}

/** A TLS connection kept open, asking a line at a time. */
async function openTls(
  port: number,
  ca: string[],
): Promise<{ ask(): Promise<string>; subject(): string; close(): void }> {
  const socket = tlsConnect({ host: "127.0.0.1", port, ca, servername: "localhost" });
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
  });
  let buffered = "";
  let waiting: ((line: string) => void) | null = null;
  socket.on("data", (c: Buffer) => {
    buffered += c.toString();
    const end = buffered.indexOf("\n");
    if (end !== -1 && waiting !== null) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      const done = waiting;
      waiting = null;
      done(line);
    }
  });
  socket.on("close", () => waiting?.("closed"));
  socket.on("error", () => {});
  return {
    ask: () =>
      new Promise((resolve) => {
        waiting = resolve;
        socket.write("hi\n");
      }),
    subject: () => String(socket.getPeerCertificate().subject?.CN),
    close: () => socket.destroy(),
  };
}

test(`[${UNDER_TEST}] tls: a live change swaps the certificate for new clients; open ones stay; a bad one is refused`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-tls-"));
  const a = makeCertificate(dir, "a");
  const b = makeCertificate(dir, "b");
  const server = await startTallyho([
    "--threads",
    "2",
    "--framing",
    "line",
    "--tls-cert",
    a.cert,
    "--tls-key",
    a.key,
  ]);
  const patch = (body: unknown) =>
    server.admin("/v1/config", {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json" },
      body: JSON.stringify(body),
    });
  const ca = [readFileSync(a.cert, "utf8"), readFileSync(b.cert, "utf8")];
  const held = await openTls(server.port, ca);
  try {
    assert.equal(servedSubject(server.port), "a");
    assert.match(await held.ask(), /^Hello World\d+$/);
    const swapped = await patch({ "tls-cert": b.cert, "tls-key": b.key });
    assert.equal(swapped.status, 200, await swapped.clone().text());
    for (let i = 0; i < 5; i++) assert.equal(servedSubject(server.port), "b", `new client ${i}`);
    assert.match(await held.ask(), /^Hello World\d+$/, "the connection opened before is served");
    const bad = await patch({ "tls-cert": a.cert, "tls-key": b.key });
    assert.equal(bad.status, 422, await bad.clone().text());
    assert.match(
      await bad.text(),
      /'tls-key' .*b\.key is not the key of the certificate in .*a\.crt/,
    );
    const missing = await patch({ "tls-cert": join(dir, "gone.crt") });
    assert.equal(missing.status, 422);
    assert.equal(
      servedSubject(server.port),
      "b",
      "a refused change keeps the certificate in force",
    );
    assert.match(await held.ask(), /^Hello World\d+$/);
    const info = await (await server.admin("/v1/info")).json() as {
      tls?: { file: string; subject: string; notAfter: string; notAfterSeconds: number };
    };
    assert.equal(info.tls?.file, b.cert);
    assert.equal(info.tls?.subject, "CN=b");
    const days = (info.tls!.notAfterSeconds * 1000 - Date.now()) / 86_400_000;
    assert.ok(days > 29 && days <= 30, `expires in ${days} days`);
    assert.equal(Date.parse(info.tls!.notAfter), info.tls!.notAfterSeconds * 1000);
    const metrics = await (await server.admin("/metrics")).text();
    assert.match(
      metrics,
      new RegExp(`^tallyho_tls_certificate_not_after_seconds ${info.tls!.notAfterSeconds}$`, "m"),
    );
    const config = await (await server.admin("/v1/config")).json() as Record<string, unknown>;
    assert.equal(
      config["tls-cert"] ?? (config.values as Record<string, unknown>)["tls-cert"],
      b.cert,
    );
  } finally {
    held.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`[${UNDER_TEST}] tls: SIGHUP with a --config naming other files swaps the certificate; a bad pair is refused`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-tls-"));
  const a = makeCertificate(dir, "a");
  const b = makeCertificate(dir, "b");
  const file = join(dir, "tallyho.json");
  const write = (cert: string, key: string) =>
    writeFileSync(file, JSON.stringify({ "tls-cert": cert, "tls-key": key, threads: 2 }));
  write(a.cert, a.key);
  const server = await startTallyho(["--config", file, "--framing", "line"]);
  const held = await openTls(server.port, [readFileSync(a.cert, "utf8")]);
  try {
    assert.equal(servedSubject(server.port), "a");
    write(b.cert, b.key);
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(/configuration generation 2: .*tls-cert/);
    for (let i = 0; i < 5; i++) assert.equal(servedSubject(server.port), "b", `new client ${i}`);
    assert.match(await held.ask(), /^Hello World\d+$/, "the connection opened before is served");
    write(b.cert, a.key);
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(
      /configuration not applied, keeping generation 2: .*'tls-key' .*a\.key is not the key of the certificate/,
    );
    assert.equal(servedSubject(server.port), "b");
  } finally {
    held.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The subject of the certificate a connection was served at its handshake. */
function heldSubject(port: number, ca: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, ca, servername: "localhost" }, () => {
      resolve(String(socket.getPeerCertificate().subject?.CN));
      socket.destroy();
    });
    socket.on("error", reject);
  });
}

/**
 * Two certificates (CN=a, CN=b) and the paths a server is given, which never change, as with
 * certbot's live/NAME/ files: `install` puts a pair's bytes there; `a` is in place.
 */
function renewable() {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-tls-"));
  const a = makeCertificate(dir, "a");
  const b = makeCertificate(dir, "b");
  const live = { cert: join(dir, "live.crt"), key: join(dir, "live.key") };
  const install = (pair: { cert: string; key: string }) => {
    writeFileSync(live.cert, readFileSync(pair.cert));
    writeFileSync(live.key, readFileSync(pair.key), { mode: 0o600 });
  };
  install(a);
  return { dir, a, b, live, install };
}

test(`[${UNDER_TEST}] tls: files renewed under the same names are taken up by SIGHUP and by a PATCH; open connections keep theirs`, async () => {
  const { dir, a, b, live, install } = renewable();
  const file = join(dir, "tallyho.json");
  writeFileSync(file, JSON.stringify({ "tls-cert": live.cert, "tls-key": live.key, threads: 2 }));
  const server = await startTallyho(["--config", file, "--framing", "line"]);
  const ca = [readFileSync(a.cert, "utf8"), readFileSync(b.cert, "utf8")];
  const held = await openTls(server.port, ca);
  try {
    assert.equal(servedSubject(server.port), "a");
    install(b);
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(/configuration generation 2: tls-files "CN=a, valid until .*" -> "CN=b/);
    for (let i = 0; i < 5; i++) assert.equal(servedSubject(server.port), "b", `new client ${i}`);
    assert.equal(await heldSubject(server.port, ca), "b");
    assert.match(await held.ask(), /^Hello World\d+$/, "the connection opened before is served");
    assert.equal(held.subject(), "a", "the connection opened before keeps its certificate");
    // A renewal caught half-written (the new certificate, the old key) is refused; b stays.
    writeFileSync(live.cert, readFileSync(a.cert));
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(
      /configuration not applied, keeping generation 2: .*'tls-key' .*live\.key is not the key of the certificate in .*live\.crt/,
    );
    assert.equal(servedSubject(server.port), "b");
    // The admin API's reload: any PATCH, even an empty one, re-reads the files.
    install(a);
    const reloaded = await server.admin("/v1/config", {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json" },
      body: "{}",
    });
    const body = await reloaded.text();
    assert.equal(reloaded.status, 200, body);
    await server.waitFor(/configuration generation 3: tls-files "CN=b, valid until .*" -> "CN=a/);
    assert.equal(servedSubject(server.port), "a");
    assert.match(await held.ask(), /^Hello World\d+$/);
  } finally {
    held.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`[${UNDER_TEST}] tls: given as flags (no --config), files renewed under the same names are taken up by SIGHUP, and what PATCH changed stays`, async () => {
  const { dir, b, live, install } = renewable();
  const server = await startTallyho([
    "--tls-cert",
    live.cert,
    "--tls-key",
    live.key,
    "--framing",
    "line",
  ]);
  try {
    assert.equal(servedSubject(server.port), "a");
    const patched = await server.admin("/v1/config", {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json" },
      body: JSON.stringify({ "idle-timeout": "45s" }),
    });
    assert.equal(patched.status, 200, await patched.text());
    install(b);
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(/configuration generation 3: tls-files "CN=a, valid until .*" -> "CN=b/);
    assert.equal(servedSubject(server.port), "b");
    const config = await (await server.admin("/v1/config")).json() as Record<string, unknown>;
    assert.equal(config["idle-timeout"], "45s", "the reload kept what PATCH changed");
    // Nothing renewed: said so, and the generation stays.
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(
      /SIGHUP: no --config file to re-read; the TLS files are unchanged; generation 3 stays/,
    );
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A TLS client in Python's standard library (no code shared with the server): for each name it
 * connects with that SNI ("" sends none), asks one line and reports how the connection went.
 */
const SNI_CLIENT = `
import json, socket, ssl, sys
port = int(sys.argv[1])
results = []
for name in sys.argv[2:]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    outcome = {"name": name, "reply": "", "end": None}
    try:
        conn = ctx.wrap_socket(raw, server_hostname=name or None)
        conn.sendall(b"hi\\n")
        while True:
            chunk = conn.recv(100)
            if not chunk:
                outcome["end"] = "eof"
                break
            outcome["reply"] += chunk.decode()
            if outcome["reply"].endswith("\\n"):
                outcome["end"] = "served"
                break
        conn.close()
    except ConnectionResetError as e:
        outcome["end"] = "reset"
    except ssl.SSLEOFError as e:
        outcome["end"] = "eof"
    except ssl.SSLError as e:
        outcome["end"] = "alert: " + e.reason if e.reason else "alert"
    except OSError as e:
        outcome["end"] = "error: " + repr(e)
    results.append(outcome)
print(json.dumps(results))
`;

test(`[${UNDER_TEST}] tls: a client asking for a name the certificate does not cover gets a clean close; no name or a covered one is served`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-tls-"));
  const { cert, key } = makeCertificate(dir, "localhost");
  const server = await startTallyho([
    "--threads",
    "2",
    "--framing",
    "line",
    "--tls-cert",
    cert,
    "--tls-key",
    key,
  ]);
  try {
    const names = ["other.example", "localhost", "", "LOCALHOST", "a.localhost", "evil.test"];
    const results = await python(SNI_CLIENT, [String(server.port), ...names], 60_000) as Array<
      { name: string; reply: string; end: string }
    >;
    const by = Object.fromEntries(results.map((r) => [r.name, r]));
    for (const name of ["localhost", "", "LOCALHOST"]) {
      assert.match(by[name]!.reply, /^Hello World\d+\n$/, `${JSON.stringify(name)}: served`);
    }
    for (const name of ["other.example", "a.localhost", "evil.test"]) {
      const r = by[name]!;
      assert.equal(r.reply, "", `${name}: no reply`);
      // Bun finishes the handshake, then closes (close_notify, FIN); Deno aborts the handshake
      // with an alert. Neither resets the connection.
      assert.match(r.end, /^(eof|alert.*)$/, `${name}: ${r.end}`);
    }
    const s = await opensslWrongName(server.port);
    assert.ok(!s.includes("Hello World"), `openssl s_client with a wrong name got ${s}`);
    const figures = await waitUntil(async () => {
      const now = await totals(server.admin);
      return now.rejectedServerName! >= 4 && now;
    }, { what: "four server-name rejections counted", timeoutMs: 5000 });
    assert.equal(figures.rejectedServerName, 4, "three Python clients and openssl");
    const metrics = await (await server.admin("/metrics")).text();
    const counted = [
      ...metrics.matchAll(
        /^tallyho_connections_rejected_total\{[^}]*reason="server_name"[^}]*\} (\d+)$/gm,
      ),
    ].reduce((sum, m) => sum + Number(m[1]), 0);
    assert.equal(counted, 4, "the metrics count them by reason, summed over threads");
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** `openssl s_client -servername wrong.example`: what it read before the server closed. */
function opensslWrongName(port: number): Promise<string> {
  const child = spawn("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    "wrong.example",
    "-quiet",
  ], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stdin.write("hi\n");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  return new Promise((resolve) =>
    child.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    })
  );
}

test("tls unit: the names a certificate covers are its DNS names (or CN); a wildcard covers one label", () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-tls-"));
  try {
    const wildcard = selfSignedCertificate(dir, "w", {
      days: 1,
      commonName: "ignored.example",
      altNames: "DNS:*.example.com,DNS:Tally.Example,IP:127.0.0.1",
    });
    const pem = readFileSync(wildcard.cert, "utf8");
    assert.deepEqual(certificateNames(pem), ["*.example.com", "tally.example"]);
    const accepts = serverNameCheck(pem);
    for (const name of ["a.example.com", "A.Example.COM", "tally.example", "tally.example."]) {
      assert.equal(accepts(name), true, name);
    }
    for (const name of ["example.com", "b.a.example.com", "ignored.example", "x.tally.example"]) {
      assert.equal(accepts(name), false, name);
    }
    const cnOnly = makeCertificateWithoutNames(dir);
    assert.deepEqual(certificateNames(cnOnly), ["cn.example"]);
    assert.equal(serverNameCheck(cnOnly)("cn.example"), true);
    assert.equal(serverNameCheck(cnOnly)("other.example"), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function makeCertificateWithoutNames(dir: string): string {
  const { cert } = selfSignedCertificate(dir, "cn", {
    days: 1,
    commonName: "cn.example",
    altNames: null,
  });
  return readFileSync(cert, "utf8");
}
