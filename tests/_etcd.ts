/**
 * Test fixture: a throwaway etcd cluster of 1 or 3 members on free ports of 127.0.0.1, each with
 * its own data directory in one temporary directory, started and stopped by the test; members
 * can be killed (`kill -9`), stopped and started again, and the leader found with
 * `etcdctl endpoint status`, as an operator would.
 *
 * CI installs `etcd-server` and `etcd-client` with apt-get (Debian's 3.4); without them every
 * etcd test fails with a line that says so.
 *
 * @module
 */

import { skipOffCi, toolMissing } from "./_tools.ts";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { runtime } from "../server/adapters/mod.ts";
import { freePort } from "./_ports.ts";
import { waitUntil } from "./_wait.ts";
import type { TestCertificates } from "./_certificates.ts";

/** Where `etcd` and `etcdctl` are looked for. */
export const ETCD = process.env.ETCD ?? "etcd";
export const ETCDCTL = process.env.ETCDCTL ?? "etcdctl";

/** Off CI, the reason the etcd tests skip when etcd or etcdctl is missing; under CI, false. */
export const skipEtcd: string | false = skipOffCi(
  toolMissing(ETCD, "etcd-server") ?? toolMissing(ETCDCTL, "etcd-client"),
);

/** A running test cluster. */
export interface TestEtcd {
  /** Each member's client port, by index. */
  readonly clientPorts: number[];
  /** `etcd://127.0.0.1:P1,127.0.0.1:P2,.../KEY`. */
  url(key: string): string;
  /** Whether member `index` is running. */
  running(index: number): boolean;
  /** Kills member `index` with `signal` and waits for it to be gone. */
  stop(index: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts member `index` again with its data directory (it rejoins the cluster). */
  start(index: number): Promise<void>;
  /** The index of the leader, as `etcdctl endpoint status` tells it. */
  leader(): Promise<number>;
  /** The key's value, read through `etcdctl` (a client that shares no code with tallyho). */
  get(key: string): Promise<string | null>;
  /** Every value the key held, oldest first, from etcd's history (`etcdctl get --rev`). */
  history(key: string): Promise<{ revision: number; value: string }[]>;
  /** Kills every member and removes the directory. */
  close(): Promise<void>;
}

function run(cmd: string, args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, env: { ...process.env, ETCDCTL_API: "3" } }, (
      error,
      stdout,
      stderr,
    ) => {
      if (error) reject(new Error(`${cmd} ${args.join(" ")}: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The test CA and the members' certificate it signed (for 127.0.0.1), for tests only. */
export const ETCD_TLS = {
  ca: fileURLToPath(new URL("fixtures/etcd_tls/ca.pem", import.meta.url)),
  cert: fileURLToPath(new URL("fixtures/etcd_tls/server.pem", import.meta.url)),
  key: fileURLToPath(new URL("fixtures/etcd_tls/server-key.pem", import.meta.url)),
};

/** Options for {@linkcode startEtcd}. */
export interface EtcdOptions {
  /**
   * Serve clients over TLS only, with {@linkcode ETCD_TLS}'s certificate; `url()` then gives
   * `etcds://`.
   * @default {false}
   */
  tls?: boolean;
  /**
   * Serve clients over TLS with these files (made by tests/_certificates.ts) instead, and ask
   * every client for a certificate their CA signed (`--client-cert-auth --trusted-ca-file`).
   * @default {undefined: no client certificates}
   */
  mutualTls?: TestCertificates;
}

/**
 * Starts a cluster and waits until it has a leader.
 *
 * @param size 1 or 3 members.
 * @param options TLS.
 * @returns The cluster.
 */
export async function startEtcd(size = 3, options: EtcdOptions = {}): Promise<TestEtcd> {
  const mutual = options.mutualTls;
  const tls = (options.tls ?? false) || mutual !== undefined;
  const scheme = tls ? "https" : "http";
  const fetchHealth = mutual !== undefined
    ? runtime.tlsFetch({
      ca: readFileSync(mutual.ca, "utf8"),
      cert: readFileSync(mutual.clientCert, "utf8"),
      key: readFileSync(mutual.clientKey, "utf8"),
    })
    : tls
    ? runtime.tlsFetch({ ca: readFileSync(ETCD_TLS.ca, "utf8"), cert: null, key: null })
    : fetch;
  const serverTls = mutual !== undefined
    ? [
      "--cert-file",
      mutual.serverCert,
      "--key-file",
      mutual.serverKey,
      "--client-cert-auth",
      "--trusted-ca-file",
      mutual.ca,
    ]
    : tls
    ? ["--cert-file", ETCD_TLS.cert, "--key-file", ETCD_TLS.key]
    : [];
  const dir = mkdtempSync(join(tmpdir(), "tallyho-etcd-"));
  const clientPorts: number[] = [];
  const peerPorts: number[] = [];
  for (let i = 0; i < size; i++) {
    clientPorts.push(await freePort());
    peerPorts.push(await freePort());
  }
  const cluster = peerPorts.map((p, i) => `m${i}=http://127.0.0.1:${p}`).join(",");
  const children: (ChildProcess | null)[] = new Array(size).fill(null);
  const exits: (Promise<void> | null)[] = new Array(size).fill(null);
  const logs: string[] = new Array(size).fill("");

  const launch = (i: number): Promise<void> => {
    const args = [
      "--name",
      `m${i}`,
      "--data-dir",
      join(dir, `m${i}`),
      "--listen-client-urls",
      `${scheme}://127.0.0.1:${clientPorts[i]}`,
      "--advertise-client-urls",
      `${scheme}://127.0.0.1:${clientPorts[i]}`,
      ...serverTls,
      "--listen-peer-urls",
      `http://127.0.0.1:${peerPorts[i]}`,
      "--initial-advertise-peer-urls",
      `http://127.0.0.1:${peerPorts[i]}`,
      "--initial-cluster",
      cluster,
      // A restarted member keeps its data directory, which already names its cluster.
      "--initial-cluster-state",
      "new",
      "--initial-cluster-token",
      "tallyho-test",
      // Fast elections on loopback: the tests measure failover, not etcd's patience.
      "--heartbeat-interval",
      "50",
      "--election-timeout",
      "500",
      "--log-outputs",
      "stderr",
    ];
    let child: ChildProcess;
    try {
      child = spawn(ETCD, args, { stdio: ["ignore", "ignore", "pipe"] });
    } catch (error) {
      return Promise.reject(error);
    }
    children[i] = child;
    logs[i] = "";
    exits[i] = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.stderr?.on("data", (chunk: Buffer) => {
      if (logs[i]!.length < 200_000) logs[i] += chunk.toString();
    });
    return new Promise((resolve, reject) => {
      child.once("error", (error) =>
        reject(
          new Error(
            `cannot run ${ETCD} (${error.message}): apt-get install etcd-server etcd-client`,
          ),
        ));
      child.once("spawn", () => resolve());
    });
  };

  const healthy = async (i: number, deadlineMs: number): Promise<void> => {
    await waitUntil(async () => {
      const reply = await fetchHealth(`${scheme}://127.0.0.1:${clientPorts[i]}/health`);
      const body = await reply.json() as { health?: string };
      if (body.health !== "true") throw new Error(JSON.stringify(body));
      return true;
    }, { what: () => `etcd member ${i} healthy:\n${logs[i]}`, timeoutMs: deadlineMs, everyMs: 50 });
  };

  const liveEndpoints = () =>
    clientPorts.filter((_, i) => children[i] !== null).map((p) => `${scheme}://127.0.0.1:${p}`);
  // etcdctl is a client like any other: over TLS it trusts the CA and shows the certificate.
  const ctlTls = mutual !== undefined
    ? ["--cacert", mutual.ca, "--cert", mutual.clientCert, "--key", mutual.clientKey]
    : tls
    ? ["--cacert", ETCD_TLS.ca]
    : [];

  const etcd: TestEtcd = {
    clientPorts,
    url: (key) =>
      `${tls ? "etcds" : "etcd"}://${clientPorts.map((p) => `127.0.0.1:${p}`).join(",")}/${key}`,
    running: (i) => children[i] !== null,
    async stop(i, signal = "SIGKILL") {
      const child = children[i];
      if (!child) return;
      child.kill(signal);
      await exits[i];
      children[i] = null;
    },
    async start(i) {
      if (children[i]) return;
      await launch(i);
    },
    async leader() {
      const out = await run(ETCDCTL, [
        "--endpoints",
        liveEndpoints().join(","),
        ...ctlTls,
        "endpoint",
        "status",
        "-w",
        "json",
      ]);
      // Member ids are 64-bit: read as text, since JSON.parse would round them.
      for (
        const row of out.matchAll(/"Endpoint":"([^"]+)".*?"member_id":(\d+).*?"leader":(\d+)/g)
      ) {
        if (row[2] === row[3]) return clientPorts.indexOf(Number(row[1]!.split(":").at(-1)));
      }
      throw new Error(`no leader in ${out}`);
    },
    async get(key) {
      const out = await run(ETCDCTL, [
        "--endpoints",
        liveEndpoints().join(","),
        ...ctlTls,
        "get",
        key,
        "--print-value-only",
      ]);
      return out === "" ? null : out.replace(/\n$/, "");
    },
    async history(key) {
      const now = JSON.parse(
        await run(ETCDCTL, [
          "--endpoints",
          liveEndpoints().join(","),
          ...ctlTls,
          "-w",
          "json",
          "get",
          key,
        ]),
      ) as { kvs?: { mod_revision: number }[] };
      const until = now.kvs?.[0]?.mod_revision ?? 0;
      if (until === 0) return [];
      // `etcdctl watch --rev 1` replays every change since the first revision, then waits for
      // more: read until the key's current revision shows, then stop it.
      const watch = spawn(ETCDCTL, [
        "--endpoints",
        liveEndpoints().join(","),
        ...ctlTls,
        "watch",
        key,
        "--rev",
        "1",
        "-w",
        "json",
      ], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ETCDCTL_API: "3" } });
      const values: { revision: number; value: string }[] = [];
      let text = "";
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error("etcdctl watch: no history in 20 s")),
            20_000,
          );
          watch.stdout!.on("data", (chunk: Buffer) => {
            text += chunk.toString();
            let newline;
            while ((newline = text.indexOf("\n")) !== -1) {
              const line = text.slice(0, newline);
              text = text.slice(newline + 1);
              if (!line.startsWith("{")) continue;
              const events = (JSON.parse(line) as {
                Events?: { kv: { mod_revision: number; value?: string } }[];
              }).Events ?? [];
              for (const { kv } of events) {
                values.push({ revision: kv.mod_revision, value: atob(kv.value ?? "") });
                if (kv.mod_revision >= until) {
                  clearTimeout(timer);
                  resolve();
                }
              }
            }
          });
          watch.once("exit", () => reject(new Error("etcdctl watch exited early")));
        });
      } finally {
        watch.kill("SIGKILL");
      }
      return values.filter((v) => v.revision <= until);
    },
    async close() {
      for (let i = 0; i < size; i++) await etcd.stop(i);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (let i = 0; i < size; i++) await launch(i);
    await Promise.all(clientPorts.map((_, i) => healthy(i, 15_000)));
  } catch (error) {
    await etcd.close();
    throw error;
  }
  return etcd;
}
