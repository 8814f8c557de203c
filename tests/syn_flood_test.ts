/**
 * tallyho under a SYN flood, the way the internet delivers one: inside a throwaway network
 * namespace, `hping3 --flood --rand-source` aims SYNs from random (spoofed) addresses at the
 * server on that namespace's loopback while a legitimate client makes 1,000 connect-request-reply
 * rounds. With SYN cookies on, at least 99% must succeed. The same run with cookies off is printed
 * for contrast, not asserted: there the flood is expected to shut clients out.
 *
 * All flood traffic stays on the namespace's own 127.0.0.1: no other address, no host interface.
 * Outgoing RSTs are dropped in the namespace, so half-open connections are never cleared by a
 * reset (as with spoofed sources on the internet, which never answer).
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import {
  createNetns,
  deleteNetns,
  finished,
  mustRun,
  netnsUnavailable,
  requireNetns,
  skipUnlessCi,
  spawnIn,
} from "./_netns.ts";
import { ROOT, tallyhoCommand, UNDER_TEST } from "./_server.ts";

const unavailable = netnsUnavailable(["hping3", "iptables", "timeout", "sysctl", "ss"]);

const ROUNDS = 1_000;
/** The client keeps going at least this long, so the flood lasts a few seconds either way. */
const MIN_CLIENT_MS = 3_000;
const CONCURRENCY = 20;
const FILL_MS = 1_000;

interface ClientResult {
  attempted: number;
  ok: number;
  failed: number;
  connectMs: { p50: number | null; p99: number | null; max: number | null };
  errors: Record<string, number>;
  elapsedMs: number;
}

interface FloodRun {
  client: ClientResult;
  /** SYNs hping3 says it sent. */
  synsSent: number | null;
  /** Half-open connections on the server's port once the flood had run FILL_MS. */
  synRecv: number;
  /** How the kernel's TcpExt counters moved during the run. */
  counters: Record<string, number>;
}

const COUNTERS = [
  "TCPReqQFullDoCookies",
  "TCPReqQFullDrop",
  "SyncookiesSent",
  "SyncookiesRecv",
  "ListenDrops",
  "ListenOverflows",
];

function tcpExt(ns: string): Record<string, number> {
  const lines = mustRun(ns, "cat", ["/proc/net/netstat"]).split("\n")
    .filter((line) => line.startsWith("TcpExt:"));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  return Object.fromEntries(names.map((name, i) => [name, Number(values[i])]));
}

function startServerIn(ns: string, children: ChildProcess[]): Promise<number> {
  const { cmd, argv, cwd } = tallyhoCommand([
    "serve",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--threads",
    "2",
  ]);
  const child = spawnIn(ns, cmd, argv, cwd);
  children.push(child);
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`tallyho did not start in ${ns} within 20 s:\n${output}`)),
      20_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on \S+:(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`tallyho exited with ${code} in ${ns} before listening:\n${output}`));
    });
  });
}

async function floodRun(
  ns: string,
  port: number,
  children: ChildProcess[],
  budget: { roundTimeoutMs: number; deadlineMs: number },
): Promise<FloodRun> {
  const before = tcpExt(ns);
  // Bounded in time by `timeout` even if this test dies (hping3 3.0.0-alpha-2 ignores -c with
  // --flood, so a packet count cannot bound it); stopped sooner below once the client is done.
  const seconds = Math.ceil((FILL_MS + budget.deadlineMs + budget.roundTimeoutMs) / 1000) + 5;
  const hping = spawnIn(ns, "timeout", [
    String(seconds),
    "hping3",
    "-S",
    "--flood",
    "--rand-source",
    "-p",
    String(port),
    "127.0.0.1",
  ]);
  children.push(hping);
  const hpingDone = finished(hping);
  await new Promise((resolve) => setTimeout(resolve, FILL_MS));
  if (hping.exitCode !== null) {
    const { stdout, stderr } = await hpingDone;
    throw new Error(`hping3 stopped at once (exit ${hping.exitCode}):\n${stdout}${stderr}`);
  }
  const synRecv = mustRun(ns, "ss", ["-tnH", "state", "syn-recv", `sport = :${port}`])
    .split("\n").filter((line) => line.trim()).length;

  const runtimeArgs = "Bun" in globalThis ? [] : ["run", "-A"];
  const client = await finished(
    spawnIn(ns, process.execPath, [
      ...runtimeArgs,
      join(ROOT, "tests", "_syn_flood_client.ts"),
      String(port),
      String(ROUNDS),
      String(MIN_CLIENT_MS),
      String(CONCURRENCY),
      String(budget.roundTimeoutMs),
      String(budget.deadlineMs),
    ], ROOT),
  );
  // SIGINT: timeout passes it on, and hping3 prints how many packets it sent.
  process.kill(hping.pid!, "SIGINT");
  const flood = await hpingDone;
  const after = tcpExt(ns);
  let result: ClientResult;
  try {
    result = JSON.parse(client.stdout.trim().split("\n").pop()!) as ClientResult;
  } catch {
    throw new Error(
      `the client printed no result (exit ${client.code}):\n${client.stdout}${client.stderr}`,
    );
  }
  const sent = /(\d+) packets transmitted/.exec(flood.stdout + flood.stderr);
  return {
    client: result,
    synsSent: sent ? Number(sent[1]) : null,
    synRecv,
    counters: Object.fromEntries(
      COUNTERS.map((name) => [name, (after[name] ?? 0) - (before[name] ?? 0)]),
    ),
  };
}

function describeRun(cookies: number, run: FloodRun): string {
  const c = run.client;
  const rate = c.attempted ? ((100 * c.ok) / c.attempted).toFixed(1) : "0.0";
  const counters = Object.entries(run.counters).map(([name, value]) => `${name} +${value}`);
  return `syn flood [${UNDER_TEST}] tcp_syncookies=${cookies}: ${c.ok}/${c.attempted} rounds ok ` +
    `(${rate}%) in ${c.elapsedMs} ms; connect p50 ${c.connectMs.p50 ?? "-"} ms, ` +
    `p99 ${c.connectMs.p99 ?? "-"} ms, max ${c.connectMs.max ?? "-"} ms; ` +
    `errors ${JSON.stringify(c.errors)}; hping3 sent ${run.synsSent ?? "?"} SYNs; ` +
    `half-open on the port after ${FILL_MS} ms: ${run.synRecv}; ${counters.join(", ")}`;
}

test(
  `[${UNDER_TEST}] syn flood: with SYN cookies at least 99% of ${ROUNDS}+ client rounds succeed under hping3 --flood --rand-source`,
  { skip: skipUnlessCi(unavailable) },
  async () => {
    requireNetns(unavailable);
    const ns = createNetns("tallyho-syn");
    const children: ChildProcess[] = [];
    try {
      mustRun(ns, "sysctl", ["-q", "-w", "net.ipv4.tcp_syncookies=1"]);
      mustRun(ns, "iptables", [
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "--tcp-flags",
        "RST",
        "RST",
        "-j",
        "DROP",
      ]);
      const port = await startServerIn(ns, children);

      const withCookies = await floodRun(ns, port, children, {
        roundTimeoutMs: 3_000,
        deadlineMs: 25_000,
      });
      console.log(describeRun(1, withCookies));

      // Contrast, printed only: same server, same flood, cookies off, a shorter budget because
      // rounds are expected to time out.
      mustRun(ns, "sysctl", ["-q", "-w", "net.ipv4.tcp_syncookies=0"]);
      const withoutCookies = await floodRun(ns, port, children, {
        roundTimeoutMs: 2_000,
        deadlineMs: 6_000,
      });
      console.log(describeRun(0, withoutCookies));

      const c = withCookies.client;
      assert.ok(
        withCookies.counters.TCPReqQFullDoCookies! > 0,
        `the flood filled the SYN queue (kernel answered with cookies): ${
          describeRun(1, withCookies)
        }`,
      );
      assert.ok(
        c.attempted >= ROUNDS,
        `at least ${ROUNDS} rounds ran: ${describeRun(1, withCookies)}`,
      );
      assert.ok(
        c.ok >= 0.99 * c.attempted,
        `at least 99% of rounds succeed with SYN cookies: ${describeRun(1, withCookies)}`,
      );
    } finally {
      await deleteNetns(ns, children);
    }
  },
);
