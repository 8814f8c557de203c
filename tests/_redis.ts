/**
 * Test fixture: a throwaway `redis-server` on a free port of 127.0.0.1, with no snapshots and (by
 * default) no append-only file, and a client to read and set keys, watch commands and stop it.
 *
 * CI installs `redis-server` with apt-get (`.ci/system_tools.sh`). Without it the tests that start
 * one skip off CI ({@linkcode skipRedis}) and fail under CI with a line that says so.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { createClient } from "@redis/client";
import { skipOffCi, toolMissing } from "./_tools.ts";
import { freePort } from "./_ports.ts";

/** Where `redis-server` is looked for. */
export const REDIS_SERVER = process.env.REDIS_SERVER ?? "redis-server";

/** Why no test Redis can start here, or null when one can. */
export const redisUnavailable: string | null = toolMissing(REDIS_SERVER, "redis-server");

/** The `skip` option for a test that starts a Redis: the reason off CI, never under CI. */
export const skipRedis: string | false = skipOffCi(redisUnavailable);

/** Options for {@linkcode startRedis}. */
export interface RedisOptions {
  /**
   * `requirepass`: clients must send it.
   * @default {null}
   */
  password?: string | null;
  /**
   * Write every command to an append-only file in a temporary directory and fsync it before
   * replying (`appendonly yes`, `appendfsync always`), so a `kill -9` loses nothing.
   * @default {false}
   */
  durable?: boolean;
  /**
   * Serve TLS only, with the test certificate {@linkcode TLS_CERT} (for 127.0.0.1); `url()` then
   * gives `rediss://`.
   * @default {false}
   */
  tls?: boolean;
  /**
   * Allow `DEBUG` commands from 127.0.0.1 (`enable-debug-command local`), for `DEBUG SLEEP`: a
   * Redis that stalls while connected.
   * @default {false}
   */
  debug?: boolean;
}

/** A self-signed certificate for 127.0.0.1, for tests only (its key is beside it). */
export const TLS_CERT = fileURLToPath(new URL("fixtures/redis_tls_cert.pem", import.meta.url));
const TLS_KEY = fileURLToPath(new URL("fixtures/redis_tls_key.pem", import.meta.url));

/** A running test Redis. */
export interface TestRedis {
  readonly port: number;
  /** `redis://127.0.0.1:PORT/0?key=KEY` (`rediss://` with `tls`). */
  url(key: string): string;
  /** Runs one command and resolves with its reply. */
  command(...args: string[]): Promise<unknown>;
  /**
   * Watches every command Redis runs (MONITOR), in the order it runs them.
   *
   * @returns The lines so far, and a function that stops watching.
   */
  monitor(): Promise<{ lines: string[]; stop(): void }>;
  /** Kills it with SIGKILL and waits for it to be gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same data directory. */
  restart(): Promise<void>;
  /** Kills it and removes its directory. */
  close(): Promise<void>;
}

/** Kept here for the files that import it from this fixture; it lives in tests/_ports.ts. */
export { freePort };

function launch(args: string[]): Promise<{ child: ChildProcess; exited: Promise<void> }> {
  let child: ChildProcess;
  try {
    child = spawn(REDIS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    return Promise.reject(error);
  }
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`redis-server did not start within 10 s:\n${output}`));
    }, 10_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (/Ready to accept connections/.test(output)) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        child.stdout?.resume();
        resolve({ child, exited });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(
        new Error(
          `cannot run ${REDIS_SERVER} (${error.message}): install it (apt-get install redis-server)`,
        ),
      );
    });
    exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited before it was ready:\n${output}`));
    });
  });
}

/**
 * Starts a redis-server on a free port of 127.0.0.1.
 *
 * @param options Password and durability.
 * @returns The running server; call `close()` in a `finally`.
 */
export async function startRedis(options: RedisOptions = {}): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-redis-"));
  const password = options.password ?? null;
  let port = 0;
  let running: { child: ChildProcess; exited: Promise<void> } | null = null;
  const tls = options.tls ?? false;
  const args = () => [
    ...(tls
      ? [
        "--port",
        "0",
        "--tls-port",
        String(port),
        "--tls-cert-file",
        TLS_CERT,
        "--tls-key-file",
        TLS_KEY,
        "--tls-auth-clients",
        "no",
      ]
      : ["--port", String(port)]),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--dir",
    dir,
    ...(options.durable
      ? ["--appendonly", "yes", "--appendfsync", "always"]
      : ["--appendonly", "no"]),
    ...(password === null ? [] : ["--requirepass", password]),
    ...(options.debug ? ["--enable-debug-command", "local"] : []),
  ];
  // Another process may take the free port before redis-server binds it: try a few.
  for (let attempt = 0; running === null; attempt++) {
    port = await freePort();
    try {
      running = await launch(args());
    } catch (error) {
      if (attempt >= 4 || !/Address already in use/.test((error as Error).message)) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  const connect = async () => {
    const client = createClient({
      socket: tls
        ? {
          host: "127.0.0.1",
          port,
          reconnectStrategy: false,
          tls: true,
          ca: [readFileSync(TLS_CERT, "utf8")],
        }
        : { host: "127.0.0.1", port, reconnectStrategy: false },
      RESP: 2,
      ...(password === null ? {} : { password }),
    });
    client.on("error", () => {});
    await client.connect();
    return client;
  };
  const kill = async () => {
    if (running === null) return;
    running.child.kill("SIGKILL");
    await running.exited;
    running = null;
  };
  return {
    port,
    url: (key) => `${tls ? "rediss" : "redis"}://127.0.0.1:${port}/0?key=${key}`,
    command: async (...command) => {
      const client = await connect();
      try {
        return await client.sendCommand(command);
      } finally {
        client.destroy();
      }
    },
    monitor: async () => {
      const client = await connect();
      const lines: string[] = [];
      await client.monitor((line: string) => lines.push(line));
      return { lines, stop: () => client.destroy() };
    },
    kill,
    restart: async () => {
      await kill();
      running = await launch(args());
    },
    close: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
