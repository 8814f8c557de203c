/**
 * The PROXY protocol together with TLS: the balancer passes TLS through (HAProxy `mode tcp`,
 * `send-proxy-v2`) and sends its header in the clear before the client's handshake, so tallyho
 * reads the header on a plain connection and then starts TLS on it (Bun's upgradeTLS, fed the
 * bytes that followed the header in the same read). The client is Python's ssl module, from
 * several 127.0.0.x addresses: the deny list acts on the client's own address behind HAProxy,
 * a header and ClientHello sent in one segment are served, and a direct client is served over
 * TLS while a forged header is closed. Deno 2.9 cannot start TLS on an accepted connection:
 * there the combination is refused at start with the reason.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test as nodeTest } from "node:test";
import { runTallyho, startTallyho, UNDER_TEST } from "./_server.ts";
import { python } from "./_python.ts";
import { totals } from "./_proxy_clients.ts";
import { freePort, waitForListener } from "./_ports.ts";
import { selfSignedCertificate } from "./_certificates.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";
import { waitUntil } from "./_wait.ts";

const opensslMissing = toolMissing("openssl", "openssl");

/** The certificate for localhost the server is given. */
const makeCertificate = (dir: string) => selfSignedCertificate(dir, "localhost");

/** HAProxy passing TLS through with a v2 header first, as docs/proxy-and-tls.md shows. */
function haproxyConfig(listen: number, tallyho: number): string {
  return `global
  maxconn 1000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend tls_in
  bind 127.0.0.1:${listen}
  default_backend tallyho
backend tallyho
  server t1 127.0.0.1:${tallyho} send-proxy-v2
`;
}

/**
 * Each step: [source, port, header hex ("" for none), coalesce]. With coalesce the header and
 * the ClientHello go out in one write (built with a memory BIO); otherwise the header is sent,
 * then the handshake runs on the socket. Prints each step's reply line ("" when closed).
 */
const CLIENT = `
import json, socket, ssl, sys
steps = json.loads(sys.argv[1])
out = []
def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
for source, port, header, coalesce in steps:
    reply = ""
    try:
        raw = socket.socket()
        raw.settimeout(10)
        raw.bind((source, 0))
        raw.connect(("127.0.0.1", port))
        head = bytes.fromhex(header)
        if coalesce:
            inc, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = context().wrap_bio(inc, outgoing, server_hostname="localhost")
            def pump():
                data = raw.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                inc.write(data)
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            raw.sendall(head + outgoing.read())
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    raw.sendall(outgoing.read())
                    pump()
            obj.write(b"hi\\n")
            raw.sendall(outgoing.read())
            while "\\n" not in reply:
                try:
                    reply += obj.read(100).decode()
                except ssl.SSLWantReadError:
                    pump()
        else:
            if head:
                raw.sendall(head)
            conn = context().wrap_socket(raw, server_hostname="localhost")
            conn.sendall(b"hi\\n")
            while "\\n" not in reply:
                chunk = conn.recv(100)
                if not chunk:
                    break
                reply += chunk.decode()
        raw.close()
    except (OSError, ssl.SSLError, ConnectionError):
        pass
    out.append(reply.strip())
print(json.dumps(out))
`;

function v2Hex(client: string, port: number): string {
  const sig = "0d0a0d0a000d0a515549540a";
  const ip = client.split(".").map((n) => Number(n).toString(16).padStart(2, "0")).join("");
  const ports = (40000).toString(16).padStart(4, "0") + port.toString(16).padStart(4, "0");
  return `${sig}2111000c${ip}7f000001${ports}`;
}

const FLAGS = (cert: string, key: string) => [
  "--threads",
  "1",
  "--framing",
  "line",
  "--tls-cert",
  cert,
  "--tls-key",
  key,
  "--proxy-protocol",
  "--proxy-from",
  "127.0.0.1/32",
  "--deny",
  "127.0.0.4/32",
];

if (UNDER_TEST === "deno") {
  nodeTest(
    `[${UNDER_TEST}] proxy protocol with tls: refused at start, naming why (no server-side startTls)`,
    {
      skip: skipOffCi(opensslMissing),
    },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "tallyho-proxy-tls-"));
      const { cert, key } = makeCertificate(dir);
      try {
        const { code, stderr } = await runTallyho([
          "--host",
          "127.0.0.1",
          "--port",
          "0",
          "--admin",
          "off",
          ...FLAGS(cert, key),
        ]);
        assert.equal(code, 2, stderr);
        assert.match(
          stderr,
          /'proxy-protocol' cannot be combined with 'tls-cert' on this runtime .*denoland\/deno#18451/,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
} else {
  nodeTest(
    `[${UNDER_TEST}] proxy protocol with tls behind HAProxy: the header, then TLS; limits act on the clients' own addresses`,
    { skip: skipOffCi(toolMissing("haproxy", "haproxy") ?? opensslMissing) },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "tallyho-proxy-tls-"));
      const { cert, key } = makeCertificate(dir);
      const server = await startTallyho(FLAGS(cert, key));
      const listen = await freePort();
      const config = join(dir, "haproxy.cfg");
      writeFileSync(config, haproxyConfig(listen, server.port));
      const child = spawn("haproxy", ["-db", "-f", config], { stdio: ["ignore", "pipe", "pipe"] });
      let log = "";
      child.stdout!.on("data", (c: Buffer) => (log += c.toString()));
      child.stderr!.on("data", (c: Buffer) => (log += c.toString()));
      const exited = new Promise((resolve) => child.on("exit", resolve));
      try {
        await waitForListener(listen, child, () => log);
        const steps: Array<[string, number, string, boolean]> = [
          ...Array.from(
            { length: 6 },
            (_, i) =>
              [`127.0.0.${2 + (i % 2)}`, listen, "", false] as [string, number, string, boolean],
          ),
          ["127.0.0.4", listen, "", false], // denied by its own address behind HAProxy
          // As a balancer would: the header and the ClientHello in one segment.
          ["127.0.0.1", server.port, v2Hex("127.0.0.9", server.port), true],
          ["127.0.0.1", server.port, v2Hex("127.0.0.4", server.port), true], // denied
          ["127.0.0.6", server.port, "", false], // direct, untrusted, no header: served
          // Direct from an untrusted address with a forged header: closed.
          ["127.0.0.6", server.port, v2Hex("127.0.0.3", server.port), false],
        ];
        const replies = await python(CLIENT, [JSON.stringify(steps)], 60_000) as string[];
        const served = /^Hello World\d+$/;
        for (let i = 0; i < 6; i++) assert.match(replies[i]!, served, `client ${i} via HAProxy`);
        assert.equal(replies[6], "", `127.0.0.4 is denied: ${JSON.stringify(replies)}`);
        assert.match(replies[7]!, served, "header and ClientHello in one segment");
        assert.equal(replies[8], "", "a denied client named by a coalesced header");
        assert.match(replies[9]!, served, "a direct client over TLS");
        assert.equal(replies[10], "", "a forged header from an untrusted address");
        const numbers = replies.filter((r) => served.test(r));
        assert.equal(new Set(numbers).size, numbers.length, "no number repeats");
        // Both counts: a snapshot can hold the denials and not yet the forged header (the last).
        let figures = await waitUntil(async () => {
          const now = await totals(server.admin);
          return (now.rejectedDenied ?? 0) >= 2 && (now.rejectedProxyHeaderUntrusted ?? 0) >= 1 &&
            now;
        }, { what: "two denied connections and a forged header counted", timeoutMs: 5000 });
        assert.equal(figures.rejectedDenied, 2);
        assert.equal(figures.rejectedProxyHeaderUntrusted, 1);
        // Every connection, upgraded or refused, is counted out once it closes.
        figures = await waitUntil(async () => {
          const now = await totals(server.admin);
          return now.connectionsActive === 0 && now;
        }, { what: "no connection counted as open", timeoutMs: 5000 });
      } finally {
        child.kill("SIGTERM");
        await exited;
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
}
