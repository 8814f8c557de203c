/**
 * The servers the comparison drives: the anchors of docs/anchors.md (nginx stream `return`,
 * Redis, gevent), the bare runtimes, and tallyho on Bun, on Deno and compiled. Each is one
 * thread or process on one core, so every figure is a one-core figure.
 *
 * @module
 */

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Runtime } from "../../server/runtime.ts";
import type { LaunchSpec } from "./server_process.ts";
import { adminArgs } from "./loop_delay_probe.ts";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** The pinned toolchain from package.json. */
export const BUN = join(ROOT, "node_modules/.bin/bun");
export const DENO = join(ROOT, "node_modules/.bin/deno");
/** gevent is packaged for Debian's python3, not for a pyenv interpreter that may be on PATH. */
export const SYSTEM_PYTHON = "/usr/bin/python3";

/** The workloads the comparison measures (the idle workload is the memory measurement). */
export type CompareWorkload = "closed" | "pipelined" | "connect";

/** A server the comparison can start. */
export interface ServerKind {
  /** Short name used in tables and on the command line. */
  name: string;
  /** What it is, for the report. */
  label: string;
  /** The workloads it can serve. */
  workloads: CompareWorkload[];
  /** The runtime it runs on, for the "vs bare runtime" and "Deno vs Bun" ratios. */
  runtime: Runtime | null;
  /** Whether it is tallyho (the subject) rather than a reference. */
  tallyho: boolean;
  /** Whether it can hold idle connections open (nginx `return` closes every one). */
  holdsConnections: boolean;
  /**
   * The command that starts it on `port`.
   *
   * @param port The port to listen on.
   * @param dir A private temporary directory (for configuration, logs, pid files).
   * @param core The core to pin to, or `null`.
   */
  launch(port: number, dir: string, core: number | null): LaunchSpec;
}

// The admin API on a free loopback port: the report reads the event-loop delay from it.
const tallyhoArgs = (port: number, dir: string) => [
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
  // The memory run holds 10,000 connections from one address, and the other servers have no
  // per-address cap: off, as theirs is.
  "--max-connections-per-address",
  "0",
  // Each tallyho run starts its admin API on a free loopback port (several run at once), where
  // the comparison reads its event-loop delay.
  ...adminArgs(dir),
];

function nginxConfig(port: number, dir: string, core: number | null): string {
  return [
    "load_module /usr/lib/nginx/modules/ngx_stream_module.so;",
    "daemon off;",
    "worker_processes 1;",
    core === null ? "" : `worker_cpu_affinity ${(1 << core).toString(2)};`,
    `pid ${join(dir, "nginx.pid")};`,
    `error_log ${join(dir, "error.log")} warn;`,
    "worker_rlimit_nofile 20000;",
    "events { worker_connections 16000; }",
    "stream {",
    "  server {",
    `    listen 127.0.0.1:${port} reuseport backlog=4096;`,
    '    return "Hello World$connection\\n";',
    "  }",
    "}",
    "",
  ].join("\n");
}

/** Every server, in the order the report lists them. */
export const SERVERS: ServerKind[] = [
  {
    name: "nginx",
    label: "nginx 1.x stream `return` (1 worker)",
    workloads: ["connect"],
    runtime: null,
    tallyho: false,
    holdsConnections: false,
    launch(port, dir, core) {
      const config = join(dir, "nginx.conf");
      writeFileSync(config, nginxConfig(port, dir, core));
      // -e: the error log from the very start, before the configuration names its own.
      return {
        argv: ["nginx", "-c", config, "-p", dir, "-e", join(dir, "error.log")],
        cwd: dir,
        core,
      };
    },
  },
  {
    name: "redis",
    label: "Redis (inline PING -> +PONG)",
    workloads: ["closed", "pipelined"],
    runtime: null,
    tallyho: false,
    holdsConnections: true,
    launch: (port, dir, core) => ({
      argv: [
        "redis-server",
        "--save",
        "",
        "--appendonly",
        "no",
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--maxclients",
        "12000",
        "--dir",
        dir,
      ],
      cwd: dir,
      core,
    }),
  },
  {
    name: "gevent",
    label: "gevent StreamServer + Pool",
    workloads: ["closed", "pipelined", "connect"],
    runtime: null,
    tallyho: false,
    holdsConnections: true,
    launch: (port, dir, core) => ({
      argv: [SYSTEM_PYTHON, join(ROOT, "bench/compare/gevent_server.py"), String(port), "12000"],
      cwd: dir,
      core,
    }),
  },
  {
    name: "bare-bun",
    label: "bare Bun.listen",
    workloads: ["closed", "pipelined", "connect"],
    runtime: "bun",
    tallyho: false,
    holdsConnections: true,
    launch: (port, _dir, core) => ({
      argv: [BUN, join(ROOT, "bench/compare/bare_bun_server.ts"), String(port)],
      cwd: ROOT,
      core,
    }),
  },
  {
    name: "bare-deno",
    label: "bare Deno.listen",
    workloads: ["closed", "pipelined", "connect"],
    runtime: "deno",
    tallyho: false,
    holdsConnections: true,
    launch: (port, _dir, core) => ({
      argv: [DENO, "run", "-A", join(ROOT, "bench/compare/bare_deno_server.ts"), String(port)],
      cwd: ROOT,
      core,
    }),
  },
  {
    name: "tallyho-bun",
    label: "tallyho on Bun (1 thread)",
    workloads: ["closed", "pipelined", "connect"],
    runtime: "bun",
    tallyho: true,
    holdsConnections: true,
    launch: (port, dir, core) => ({
      argv: [BUN, join(ROOT, "mod.ts"), ...tallyhoArgs(port, dir)],
      cwd: ROOT,
      core,
    }),
  },
  {
    name: "tallyho-deno",
    label: "tallyho on Deno (1 thread)",
    workloads: ["closed", "pipelined", "connect"],
    runtime: "deno",
    tallyho: true,
    holdsConnections: true,
    launch: (port, dir, core) => ({
      argv: [DENO, "run", "-A", "--unstable-net", join(ROOT, "mod.ts"), ...tallyhoArgs(port, dir)],
      cwd: ROOT,
      core,
    }),
  },
  {
    name: "tallyho-binary",
    label: "tallyho compiled (dist/tallyho, 1 thread)",
    workloads: ["closed", "pipelined", "connect"],
    runtime: "bun",
    tallyho: true,
    holdsConnections: true,
    launch: (port, dir, core) => ({
      argv: [join(ROOT, "dist/tallyho"), ...tallyhoArgs(port, dir)],
      cwd: dir,
      core,
    }),
  },
];

/**
 * Looks a server up by name.
 *
 * @param name One of {@linkcode SERVERS}' names.
 * @returns The server.
 * @throws {RangeError} For an unknown name.
 */
export function serverNamed(name: string): ServerKind {
  const server = SERVERS.find((s) => s.name === name);
  if (server === undefined) {
    throw new RangeError(
      `'servers' must name some of ${SERVERS.map((s) => s.name).join(", ")}: got "${name}"`,
    );
  }
  return server;
}
