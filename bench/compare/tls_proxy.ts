/**
 * TLS and the PROXY protocol measured side by side, written into the `tls-and-proxy` section of
 * bench/RESULTS.md:
 *
 * - TLS: full handshakes per second (connect, TLS 1.3 handshake with no resumption, one request,
 *   one reply, close) and closed-loop replies per second over TLS; tallyho on one core (Bun,
 *   Deno, the compiled binary) against nginx stream with `ssl` (same ECDSA P-256 certificate).
 * - PROXY: closed loop and connect-per-request with and without `--proxy-protocol` (the client
 *   sends the v2 header itself), and client -> HAProxy (`send-proxy-v2`) -> tallyho against
 *   client -> HAProxy -> nginx stream.
 *
 * The client is bench/compare/tls_client.c (C, OpenSSL), built here with cc, so the client is
 * cheaper than the server; it checks every reply is `Hello World<N>` and, for tallyho, that no N
 * repeats. Servers are pinned to core 0, the client (and HAProxy) to core 1. Beside each figure:
 * the server's CPU per reply or handshake and how busy the client's core was.
 *
 *   flock /tmp/tallyho-bench.lock npx bun bench/compare/tls_proxy.ts [--seconds 5] [--rounds 2]
 *     [--binary PATH] [--only tls|proxy] [--no-write]
 *
 * nginx's closed loop needs njs (Debian libnginx-mod-stream-js): stream `return` answers once and
 * closes, so a per-line reply is a `js_filter`, with a silent upstream to keep the session open.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { selfSignedCertificate } from "./certificate.ts";
import { coreBusySeconds } from "./cpu_usage.ts";
import { machineInfo } from "./machine.ts";
import { freePort, type LaunchSpec, ServerProcess, sleep } from "./server_process.ts";
import { BUN, DENO, ROOT } from "./servers.ts";
import { writeSection } from "../results_section.ts";

const SERVER_CORE = 0;
const CLIENT_CORE = 1;
const WORKERS = 16;
const NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so";
const NGINX_JS = "/usr/lib/nginx/modules/ngx_stream_js_module.so";

type Mode = "handshake" | "closed";

/** One server setup: how to start it on a port, in a private directory. */
interface Subject {
  name: string;
  /** Who does the TLS crypto, or the path, for the report. */
  note: string;
  /** Whether its numbers are tallyho's (checked for repeats). */
  tallyho: boolean;
  /** The command that starts it on `port`; `upstream` is the silent port nginx's njs needs. */
  launch(port: number, dir: string, upstream: number): LaunchSpec;
}

interface Figure {
  section: "tls" | "tls-proxy" | "proxy" | "balancer";
  subject: string;
  note: string;
  mode: Mode;
  variant: string;
  /** Replies (closed) or connections (handshake) per second, one per round. */
  rates: number[];
  /** Server CPU microseconds per reply or per connection, one per round. */
  cpuUs: number[];
  /** The client core's busy share, one per round. */
  clientBusy: number[];
  /** The server core's busy share, one per round. */
  serverBusy: number[];
  errors: number;
  bad: number;
  repeats: number;
}

function tallyhoArgs(port: number, extra: string[]): string[] {
  return [
    "serve",
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--threads",
    "1",
    "--framing",
    "line",
    "--number-by",
    "message",
    "--max-connections-per-address",
    "0",
    "--admin",
    "off",
    ...extra,
  ];
}

function tallyho(
  runtime: "bun" | "deno" | "binary",
  extra: string[],
  binary: string | null,
): (port: number) => LaunchSpec {
  return (port) => {
    const args = tallyhoArgs(port, extra);
    const argv = runtime === "bun"
      ? [BUN, join(ROOT, "mod.ts"), ...args]
      : runtime === "deno"
      ? [DENO, "run", "-A", "--unstable-net", join(ROOT, "mod.ts"), ...args]
      : [binary!, ...args];
    return { argv, cwd: ROOT, core: SERVER_CORE };
  };
}

/** nginx stream, one worker on the server core; `body` is the server block's directives. */
function nginx(dir: string, body: string[], js: boolean): LaunchSpec {
  const config = join(dir, "nginx.conf");
  writeFileSync(
    config,
    [
      `load_module ${NGINX_STREAM};`,
      js ? `load_module ${NGINX_JS};` : "",
      "daemon off;",
      "worker_processes 1;",
      `worker_cpu_affinity ${(1 << SERVER_CORE).toString(2)};`,
      `pid ${join(dir, "nginx.pid")};`,
      `error_log ${join(dir, "error.log")} warn;`,
      "worker_rlimit_nofile 20000;",
      "events { worker_connections 16000; }",
      "stream {",
      js ? `  js_import main from ${join(dir, "hello.js")};` : "",
      "  server {",
      ...body.map((line) => `    ${line}`),
      "  }",
      "}",
      "",
    ].join("\n"),
  );
  if (js) {
    // Each session's njs VM is its own, so N counts per connection: nginx is the reference for
    // speed here, not for the promise.
    writeFileSync(
      join(dir, "hello.js"),
      [
        "var n = 0;",
        "function hello(s) {",
        "  s.on('upload', function (data, flags) {",
        "    var out = '';",
        "    for (var i = data.indexOf('\\n'); i !== -1; i = data.indexOf('\\n', i + 1)) {",
        "      out += 'Hello World' + (++n) + '\\n';",
        "    }",
        "    if (out.length > 0) s.send(out, { from_upstream: true });",
        "  });",
        "}",
        "export default { hello };",
        "",
      ].join("\n"),
    );
  }
  return {
    argv: ["nginx", "-c", config, "-p", dir, "-e", join(dir, "error.log")],
    cwd: dir,
    core: null, // worker_cpu_affinity pins the worker; the master only waits
  };
}

function haproxy(listen: number, target: number, dir: string): LaunchSpec {
  const config = join(dir, "haproxy.cfg");
  writeFileSync(
    config,
    [
      "global",
      "  maxconn 4000",
      "  nbthread 1",
      "defaults",
      "  mode tcp",
      "  timeout connect 5s",
      "  timeout client 60s",
      "  timeout server 60s",
      "frontend clients",
      `  bind 127.0.0.1:${listen}`,
      "  default_backend servers",
      "backend servers",
      `  server s1 127.0.0.1:${target} send-proxy-v2`,
      "",
    ].join("\n"),
  );
  return { argv: ["haproxy", "-db", "-f", config], cwd: dir, core: CLIENT_CORE };
}

/** A port that accepts connections and never answers: the njs filter's upstream. */
async function silentUpstream(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

function buildClient(dir: string): string {
  const out = join(dir, "tls_client");
  execFileSync("cc", [
    "-O2",
    "-o",
    out,
    join(ROOT, "bench/compare/tls_client.c"),
    "-lssl",
    "-lcrypto",
  ], { stdio: "inherit" });
  return out;
}

interface ClientOutcome {
  replies: number;
  connections: number;
  errors: number;
  bad: number;
  seconds: number;
}

/** Runs the C client pinned to the client core and returns what it counted. */
function runClient(
  client: string,
  mode: Mode,
  port: number,
  seconds: number,
  options: { tls: boolean; proxy: "none" | "v2"; numbers: string | null },
): ClientOutcome {
  const args = [
    "-c",
    String(CLIENT_CORE),
    client,
    mode,
    String(port),
    String(WORKERS),
    String(seconds),
    options.tls ? "tls" : "plain",
    options.proxy,
    ...(options.numbers === null ? [] : [options.numbers]),
  ];
  const out = execFileSync("taskset", args, {
    encoding: "utf8",
    timeout: (seconds + 30) * 1000,
  });
  return JSON.parse(out.trim().split("\n").at(-1)!) as ClientOutcome;
}

/** How many numbers the client's files hold more than once. */
function repeatsIn(prefix: string): number {
  const dir = join(prefix, "..");
  const base = prefix.slice(dir.length + 1);
  const seen = new Set<bigint>();
  let repeats = 0;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(`${base}.`)) continue;
    const bytes = readFileSync(join(dir, name));
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let at = 0; at + 8 <= bytes.byteLength; at += 8) {
      const n = view.getBigUint64(at, true);
      if (seen.has(n)) repeats++;
      else seen.add(n);
    }
    rmSync(join(dir, name));
  }
  return repeats;
}

interface Run {
  section: Figure["section"];
  subject: Subject;
  mode: Mode;
  variant: string;
  tls: boolean;
  /** The header the client sends itself. */
  proxy: "none" | "v2";
  /** Put HAProxy (send-proxy-v2) between the client and the subject. */
  balancer: boolean;
  /** The subject needs a silent upstream port (nginx with njs). */
  upstream: boolean;
}

/** Servers and balancers running now, stopped if the run is interrupted. */
const running = new Set<ServerProcess>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    await Promise.all([...running].map((server) => server.stop()));
    process.exit(130);
  });
}

async function measure(
  run: Run,
  client: string,
  seconds: number,
  rounds: number,
  root: string,
): Promise<Figure> {
  const dir = mkdtempSync(join(root, `${run.subject.name}-`));
  const figure: Figure = {
    section: run.section,
    subject: run.subject.name,
    note: run.subject.note,
    mode: run.mode,
    variant: run.variant,
    rates: [],
    cpuUs: [],
    clientBusy: [],
    serverBusy: [],
    errors: 0,
    bad: 0,
    repeats: 0,
  };
  const upstream = run.upstream ? await silentUpstream() : null;
  const port = await freePort();
  const spec = run.subject.launch(port, dir, upstream?.port ?? 0);
  const server = await ServerProcess.start(spec, port);
  running.add(server);
  let balancer: ServerProcess | null = null;
  try {
    let target = port;
    if (run.balancer) {
      const listen = await freePort();
      balancer = await ServerProcess.start(haproxy(listen, port, dir), listen);
      running.add(balancer);
      target = listen;
    }
    const options = { tls: run.tls, proxy: run.proxy, numbers: null };
    runClient(client, run.mode, target, 1, options); // warm-up: JIT, caches, first accepts
    for (let round = 0; round < rounds; round++) {
      const numbers = run.subject.tallyho ? join(dir, "numbers") : null;
      const cpuBefore = server.cpuSeconds();
      const serverBefore = coreBusySeconds(SERVER_CORE) ?? 0;
      const clientBefore = coreBusySeconds(CLIENT_CORE) ?? 0;
      const outcome = runClient(client, run.mode, target, seconds, { ...options, numbers });
      const cpu = server.cpuSeconds() - cpuBefore;
      const serverBusy = (coreBusySeconds(SERVER_CORE) ?? 0) - serverBefore;
      const clientBusy = (coreBusySeconds(CLIENT_CORE) ?? 0) - clientBefore;
      const count = run.mode === "handshake" ? outcome.connections : outcome.replies;
      figure.rates.push(count / outcome.seconds);
      figure.cpuUs.push(count === 0 ? 0 : (cpu / count) * 1e6);
      figure.serverBusy.push(Math.min(1, serverBusy / outcome.seconds));
      figure.clientBusy.push(Math.min(1, clientBusy / outcome.seconds));
      figure.errors += outcome.errors;
      figure.bad += outcome.bad;
      if (numbers !== null) figure.repeats += repeatsIn(numbers);
    }
  } finally {
    await balancer?.stop();
    await server.stop();
    running.delete(server);
    if (balancer !== null) running.delete(balancer);
    upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return figure;
}

/** The runs, in report order. */
function plan(
  tls: { cert: string; key: string },
  binary: string | null,
  only: string | null,
): Run[] {
  const tlsFlags = ["--tls-cert", tls.cert, "--tls-key", tls.key];
  const runtimes: Array<["bun" | "deno" | "binary", string]> = [
    ["bun", "Bun 1.4 (BoringSSL)"],
    ["deno", "Deno 2.9 (rustls, aws-lc-rs)"],
    ...(binary === null ? [] : [["binary", "compiled, Bun (BoringSSL)"] as ["binary", string]]),
  ];
  const runs: Run[] = [];
  const plain = { tls: false, proxy: "none" as const, balancer: false, upstream: false };
  if (only === null || only === "tls") {
    for (const mode of ["handshake", "closed"] as const) {
      for (const [runtime, note] of runtimes) {
        runs.push({
          section: "tls",
          subject: {
            name: `tallyho-${runtime}`,
            note,
            tallyho: true,
            launch: tallyho(runtime, tlsFlags, binary),
          },
          mode,
          variant: "TLS 1.3",
          ...plain,
          tls: true,
        });
      }
      const ssl = [
        `ssl_certificate ${tls.cert};`,
        `ssl_certificate_key ${tls.key};`,
        "ssl_protocols TLSv1.3;",
        "ssl_session_cache off;",
        "ssl_session_tickets off;",
      ];
      runs.push({
        section: "tls",
        subject: {
          name: "nginx",
          note: mode === "handshake"
            ? "stream ssl + return (OpenSSL 3.0)"
            : "stream ssl + njs js_filter (OpenSSL 3.0)",
          tallyho: false,
          launch: mode === "handshake"
            ? (port, dir) =>
              nginx(dir, [
                `listen 127.0.0.1:${port} ssl reuseport backlog=4096;`,
                ...ssl,
                'return "Hello World$connection\\n";',
              ], false)
            : (port, dir, upstream) =>
              nginx(dir, [
                `listen 127.0.0.1:${port} ssl reuseport backlog=4096;`,
                ...ssl,
                "js_filter main.hello;",
                `proxy_pass 127.0.0.1:${upstream};`,
              ], true),
        },
        mode,
        variant: "TLS 1.3",
        ...plain,
        tls: true,
        upstream: mode === "closed",
      });
    }
    // TLS passed through HAProxy with a PROXY v2 header first (Bun only: Deno cannot start TLS
    // after the header), against nginx's `listen ... ssl proxy_protocol`.
    const behind = [...tlsFlags, "--proxy-protocol", "--proxy-from", "127.0.0.1/32"];
    for (const mode of ["handshake", "closed"] as const) {
      for (const [runtime, note] of runtimes.filter(([r]) => r !== "deno")) {
        runs.push({
          section: "tls-proxy",
          subject: {
            name: `tallyho-${runtime}`,
            note: `${note}, upgradeTLS after the header`,
            tallyho: true,
            launch: tallyho(runtime, behind, binary),
          },
          mode,
          variant: "TLS via HAProxy",
          ...plain,
          tls: true,
          balancer: true,
        });
      }
      const ssl = [
        `ssl_certificate ${tls.cert};`,
        `ssl_certificate_key ${tls.key};`,
        "ssl_protocols TLSv1.3;",
        "ssl_session_cache off;",
        "ssl_session_tickets off;",
      ];
      runs.push({
        section: "tls-proxy",
        subject: {
          name: "nginx",
          note: mode === "handshake"
            ? "stream ssl proxy_protocol + return"
            : "stream ssl proxy_protocol + njs js_filter",
          tallyho: false,
          launch: mode === "handshake"
            ? (port, dir) =>
              nginx(dir, [
                `listen 127.0.0.1:${port} ssl proxy_protocol reuseport backlog=4096;`,
                ...ssl,
                'return "Hello World$connection\\n";',
              ], false)
            : (port, dir, upstream) =>
              nginx(dir, [
                `listen 127.0.0.1:${port} ssl proxy_protocol reuseport backlog=4096;`,
                ...ssl,
                "js_filter main.hello;",
                `proxy_pass 127.0.0.1:${upstream};`,
              ], true),
        },
        mode,
        variant: "TLS via HAProxy",
        ...plain,
        tls: true,
        balancer: true,
        upstream: mode === "closed",
      });
    }
  }
  if (only === null || only === "proxy") {
    const proxyFlags = ["--proxy-protocol", "--proxy-from", "127.0.0.0/8"];
    for (const mode of ["closed", "handshake"] as const) {
      for (const runtime of ["bun", "deno"] as const) {
        for (const on of [false, true]) {
          runs.push({
            section: "proxy",
            subject: {
              name: `tallyho-${runtime}`,
              note: on ? "--proxy-protocol, v2 header" : "no header",
              tallyho: true,
              launch: tallyho(runtime, on ? proxyFlags : [], binary),
            },
            mode,
            variant: on ? "with" : "without",
            ...plain,
            proxy: on ? "v2" : "none",
          });
        }
      }
    }
    const trusted = ["--proxy-protocol", "--proxy-from", "127.0.0.1/32"];
    for (const mode of ["handshake", "closed"] as const) {
      for (const runtime of ["bun", "deno"] as const) {
        runs.push({
          section: "balancer",
          subject: {
            name: `tallyho-${runtime}`,
            note: "behind HAProxy send-proxy-v2",
            tallyho: true,
            launch: tallyho(runtime, trusted, binary),
          },
          mode,
          variant: "HAProxy",
          ...plain,
          balancer: true,
        });
      }
      runs.push({
        section: "balancer",
        subject: {
          name: "nginx",
          note: mode === "handshake"
            ? "stream proxy_protocol + return"
            : "stream proxy_protocol + njs js_filter",
          tallyho: false,
          launch: mode === "handshake"
            ? (port, dir) =>
              nginx(dir, [
                `listen 127.0.0.1:${port} proxy_protocol reuseport backlog=4096;`,
                'return "Hello World$connection\\n";',
              ], false)
            : (port, dir, upstream) =>
              nginx(dir, [
                `listen 127.0.0.1:${port} proxy_protocol reuseport;`,
                "js_filter main.hello;",
                `proxy_pass 127.0.0.1:${upstream};`,
              ], true),
        },
        mode,
        variant: "HAProxy",
        ...plain,
        balancer: true,
        upstream: mode === "closed",
      });
    }
  }
  return runs;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const int = (n: number) => Math.round(n).toLocaleString("en-US");
const pct = (n: number) => `${Math.round(n * 100)} %`;

function row(f: Figure): string {
  const spread = f.rates.length > 1 ? ` (${f.rates.map((r) => int(r)).join(", ")})` : "";
  const checked = f.repeats > 0 ? `**${f.repeats} repeated**` : f.bad > 0 ? `${f.bad} bad` : "ok";
  return `| ${f.subject} | ${f.note} | ${int(median(f.rates))}${spread} | ${
    median(f.cpuUs).toFixed(1)
  } | ${pct(median(f.serverBusy))} | ${pct(median(f.clientBusy))} | ${f.errors} | ${checked} |`;
}

const HEADER = [
  "| server | how | per second (median, rounds) | server CPU µs each | server core busy | client core busy | errors | replies |",
  "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
];

/** How `a` compares with `b`: by the rate measured, and by the CPU each reply or handshake took. */
function ratio(figures: Figure[], section: string, mode: Mode, a: string, b: string): string {
  const find = (name: string) =>
    figures.find((f) => f.section === section && f.mode === mode && f.subject === name);
  const x = find(a);
  const y = find(b);
  if (x === undefined || y === undefined) return "n/a";
  const rate = median(x.rates) / median(y.rates);
  const cpu = median(y.cpuUs) / median(x.cpuUs);
  return `${rate.toFixed(2)}x by rate, ${cpu.toFixed(2)}x by CPU per ${
    mode === "handshake" ? "handshake" : "reply"
  }`;
}

function markdown(figures: Figure[], context: string, seconds: number, rounds: number): string {
  const lines: string[] = [
    "## TLS and the PROXY protocol, side by side",
    "",
    context,
    "",
    `Command: \`flock /tmp/tallyho-bench.lock npx bun bench/compare/tls_proxy.ts\` (${rounds} rounds of ` +
    `${seconds} s per figure, after 1 s of warm-up). Server pinned to core ${SERVER_CORE}, the C ` +
    `client (bench/compare/tls_client.c, OpenSSL, ${WORKERS} processes) and HAProxy to core ` +
    `${CLIENT_CORE}. "handshake" is connect, full TLS 1.3 handshake (no resumption), one request, ` +
    `one reply, close; without TLS it is connect-per-request. "closed" is ${WORKERS} connections, ` +
    `each sending its next line after the last reply. Every reply is checked to be ` +
    `\`Hello World<N>\`; tallyho's Ns are checked for repeats. Server CPU is the process's user + ` +
    `system time per reply (closed) or per connection (handshake).`,
  ];
  const tls = figures.filter((f) => f.section === "tls");
  if (tls.length > 0) {
    lines.push("", "### TLS (ECDSA P-256, TLS 1.3)");
    for (const mode of ["handshake", "closed"] as const) {
      lines.push(
        "",
        mode === "handshake" ? "Full handshakes per second:" : "Closed-loop replies per second:",
        "",
        ...HEADER,
      );
      for (const f of tls.filter((f) => f.mode === mode)) lines.push(row(f));
    }
    lines.push(
      "",
      "A full handshake costs the client more than the server (it verifies the ECDSA signature " +
        "the server makes, and a verify costs more than a sign), so one client core cannot keep " +
        "one server core busy with handshakes: where the client core is near 100 % the rate is " +
        "the client's, and the server CPU per handshake is the figure to compare.",
      "",
      "Against nginx (goal: handshakes >= 0.8x, closed loop >= 0.9x). On this shared machine the " +
        "rates swing between rounds with other work on the cores; the CPU each handshake or reply " +
        "took (the process's own time) moves much less, so both are given: " +
        ["tallyho-bun", "tallyho-deno", "tallyho-binary"].map((name) =>
          `${name}: handshakes ${ratio(figures, "tls", "handshake", name, "nginx")}; closed loop ${
            ratio(figures, "tls", "closed", name, "nginx")
          }`
        ).join(". ") + ".",
    );
  }
  const tlsProxy = figures.filter((f) => f.section === "tls-proxy");
  if (tlsProxy.length > 0) {
    lines.push(
      "",
      "### TLS passed through HAProxy 2.6 with a PROXY v2 header first",
      "",
      "client -> HAProxy (`mode tcp`, `send-proxy-v2`) -> server reading the header, then TLS.",
    );
    for (const mode of ["handshake", "closed"] as const) {
      lines.push(
        "",
        mode === "handshake" ? "Full handshakes per second:" : "Closed-loop replies per second:",
        "",
        ...HEADER,
      );
      for (const f of tlsProxy.filter((f) => f.mode === mode)) lines.push(row(f));
    }
  }
  const proxy = figures.filter((f) => f.section === "proxy");
  if (proxy.length > 0) {
    lines.push("", "### The PROXY protocol's cost (plain TCP, the client sends a v2 header)");
    for (const mode of ["closed", "handshake"] as const) {
      lines.push(
        "",
        mode === "closed" ? "Closed loop, replies per second:" : "Connect per request, per second:",
        "",
        ...HEADER,
      );
      for (const f of proxy.filter((f) => f.mode === mode)) lines.push(row(f));
    }
    const parts: string[] = [];
    for (const mode of ["closed", "handshake"] as const) {
      for (const name of ["tallyho-bun", "tallyho-deno"]) {
        const pick = (variant: string) =>
          proxy.find((f) => f.mode === mode && f.subject === name && f.variant === variant);
        const on = pick("with");
        const off = pick("without");
        if (on === undefined || off === undefined) continue;
        parts.push(
          `${name} ${mode === "closed" ? "closed loop" : "connect per request"}: with/without ` +
            `${(median(on.rates) / median(off.rates)).toFixed(2)}x by rate, CPU per ${
              mode === "closed" ? "reply" : "connection"
            } ${median(off.cpuUs).toFixed(1)} -> ${median(on.cpuUs).toFixed(1)} µs`,
        );
      }
    }
    lines.push("", `The header's cost (goal: no difference beyond noise): ${parts.join("; ")}.`);
  }
  const balancer = figures.filter((f) => f.section === "balancer");
  if (balancer.length > 0) {
    lines.push("", "### client -> HAProxy 2.6 (send-proxy-v2) -> server");
    for (const mode of ["handshake", "closed"] as const) {
      lines.push(
        "",
        mode === "handshake"
          ? "Connect per request, per second:"
          : "Closed loop, replies per second:",
        "",
        ...HEADER,
      );
      for (const f of balancer.filter((f) => f.mode === mode)) lines.push(row(f));
    }
  }
  return lines.join("\n");
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: "string", default: "5" },
      rounds: { type: "string", default: "2" },
      binary: { type: "string" },
      only: { type: "string" },
      "no-write": { type: "boolean" },
    },
  });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  if (availableParallelism() < 2) {
    console.error("tls_proxy: needs two cores (server on one, client on the other)");
    return 2;
  }
  const binary = values.binary ?? null;
  if (binary !== null && !existsSync(binary)) {
    console.error(`tls_proxy: --binary ${binary} does not exist (build it with ./compile.sh)`);
    return 2;
  }
  const root = mkdtempSync(join(tmpdir(), "tallyho-tls-proxy-"));
  const load = loadavg().map((n) => n.toFixed(2)).join(" ");
  try {
    const client = buildClient(root);
    const tls = selfSignedCertificate(root, "bench");
    const figures: Figure[] = [];
    for (const run of plan(tls, binary, values.only ?? null)) {
      const figure = await measure(run, client, seconds, rounds, root);
      figures.push(figure);
      console.log(
        `${run.section} ${run.mode} ${run.variant} ${figure.subject} (${figure.note}): ${
          figure.rates.map((r) => int(r)).join(", ")
        }/s, server CPU ${median(figure.cpuUs).toFixed(1)} µs each, server core ${
          pct(median(figure.serverBusy))
        }, client core ${
          pct(median(figure.clientBusy))
        }, errors ${figure.errors}, bad ${figure.bad}, repeats ${figure.repeats}`,
      );
      await sleep(300);
    }
    const machine = machineInfo();
    const loadAfter = loadavg().map((n) => n.toFixed(2)).join(" ");
    const context = `Measured ${machine.date} on ${machine.cores} cores (${machine.cpu}), kernel ` +
      `${machine.kernel}; Bun ${machine.versions.bun}, Deno ${machine.versions.deno}, nginx ` +
      `${machine.versions.nginx}, ${
        execFileSync("haproxy", ["-v"], { encoding: "utf8" }).split("\n")[0]!.replace(
          / - https.*$/,
          "",
        )
      }, ${execFileSync("openssl", ["version"], { encoding: "utf8" }).trim()}. Load average ` +
      `before ${load}, after ${loadAfter} (a shared machine: other work shares the cores).`;
    const text = markdown(figures, context, seconds, rounds);
    console.log(`\n${text}`);
    if (!values["no-write"]) {
      writeSection(join(ROOT, "bench/RESULTS.md"), "tls-and-proxy", text);
      console.log("\nwritten to bench/RESULTS.md, section tls-and-proxy");
    }
    return figures.some((f) => f.repeats > 0) ? 1 : 0;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
