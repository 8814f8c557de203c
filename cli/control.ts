/**
 * `tallyho reload|stop|upgrade --pid-file FILE`: addresses a running server the way nginx's
 * `-s reload|quit` does, by the pid file the server writes (`--pid-file`), and reports what
 * happened: stopped, upgraded to pid N, or reloaded (applied, or refused with the reason when
 * the admin API can tell), with an exit code.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { type CliIo, consoleIo, EXIT_FAILURE, UsageError, usageErrorFrom } from "./_io.ts";
import { readPidFile } from "./pid_file.ts";
import { parseDuration } from "../server/config/config_json.ts";

/** The commands, and the signal each sends. */
export const CONTROL_COMMANDS = { reload: "SIGHUP", stop: "SIGTERM", upgrade: "SIGUSR2" } as const;

/** One of {@linkcode CONTROL_COMMANDS}. */
export type ControlCommand = keyof typeof CONTROL_COMMANDS;

const FLAGS = {
  "pid-file": { type: "string" },
  timeout: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The usage text of the three commands. */
export function controlUsage(): string {
  return `Usage: tallyho reload|stop|upgrade --pid-file FILE [--timeout TIME]

Finds the running server by the pid file it writes (serve --pid-file FILE) and:
  reload    sends SIGHUP: the --config file (or the TLS files) are read again; says whether the
            reload was applied or refused, and why, where the admin API answers on this machine
  stop      sends SIGTERM and waits until the server has drained and exited
  upgrade   sends SIGUSR2 and waits until the new supervisor serves alone (the pid file names it)

Options:
  --pid-file FILE   the server's pid file (required)
  --timeout TIME    how long to wait for stop or upgrade (default 60s)
  -h, --help        show this text

Exit codes: 0 done, 1 not done (no server, refused, or not within the timeout), 2 bad command line.`;
}

/**
 * Runs `tallyho reload|stop|upgrade`.
 *
 * @param command Which.
 * @param args The arguments after it.
 * @param io Where to write.
 * @returns The exit code.
 */
export async function controlMain(
  command: ControlCommand,
  args: string[],
  io: CliIo = consoleIo,
): Promise<number> {
  let values: { "pid-file"?: string; timeout?: string; help?: boolean };
  try {
    values = parseArgs({ args, options: FLAGS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw usageErrorFrom(error as Error, "", FLAGS);
  }
  if (values.help) {
    io.out(controlUsage());
    return 0;
  }
  const path = values["pid-file"];
  if (path === undefined) {
    throw new UsageError(
      `'tallyho ${command}' needs --pid-file FILE: the file serve --pid-file wrote`,
    );
  }
  const timeoutMs = parseDuration("timeout", values.timeout ?? "60s", { min: 1, max: 3_600_000 });
  const pid = readPidFile(path);
  if (pid === null) {
    io.err(`tallyho: no server pid in ${path} (is one running with --pid-file ${path}?)`);
    return EXIT_FAILURE;
  }
  if (!alive(pid)) {
    io.err(`tallyho: ${path} names pid ${pid}, which is not running (a stale pid file)`);
    return EXIT_FAILURE;
  }
  const sentAt = Date.now();
  process.kill(pid, CONTROL_COMMANDS[command]);
  const deadline = Date.now() + timeoutMs;
  if (command === "stop") {
    while (alive(pid)) {
      if (Date.now() > deadline) {
        io.err(`tallyho: pid ${pid} is still draining after ${timeoutMs} ms`);
        return EXIT_FAILURE;
      }
      await pause(50);
    }
    io.out(`tallyho: stopped (pid ${pid})`);
    return 0;
  }
  if (command === "upgrade") {
    for (;;) {
      const now = readPidFile(path);
      if (now !== null && now !== pid && alive(now)) {
        io.out(`tallyho: upgraded: pid ${pid} -> ${now}`);
        return 0;
      }
      if (Date.now() > deadline) {
        io.err(
          `tallyho: not upgraded within ${timeoutMs} ms: pid ${pid} serves on (its log says why)`,
        );
        return EXIT_FAILURE;
      }
      await pause(50);
    }
  }
  return await reported(pid, sentAt, deadline, io);
}

/** The outcome of a reload, from the admin API when it answers here; else that it was sent. */
async function reported(pid: number, sentAt: number, deadline: number, io: CliIo): Promise<number> {
  const token = process.env.TALLYHO_ADMIN_TOKEN;
  const address = process.env.TALLYHO_ADMIN_ADDRESS ?? "127.0.0.1:9001";
  if (token !== undefined) {
    for (;;) {
      try {
        const response = await fetch(`http://${address}/v1/info`, {
          headers: { authorization: `Bearer ${token}` },
          signal: AbortSignal.timeout(2000),
        });
        const info = await response.json() as {
          pid?: number;
          reload?: { successful: boolean; lastAttemptAt: number | null; reason?: string };
        };
        const reload = info.reload;
        if (
          info.pid === pid && reload && reload.lastAttemptAt !== null &&
          reload.lastAttemptAt >= sentAt - 1000
        ) {
          if (reload.successful) {
            io.out(`tallyho: reloaded (pid ${pid})`);
            return 0;
          }
          io.err(`tallyho: reload refused (pid ${pid}): ${reload.reason ?? "see its log"}`);
          return EXIT_FAILURE;
        }
        if (info.pid !== pid) break; // another server answers there
      } catch {
        break; // no admin API here: said below
      }
      if (Date.now() > deadline) break;
      await pause(50);
    }
  }
  io.out(
    `tallyho: sent SIGHUP to pid ${pid}; its log says whether the reload was applied ` +
      `(set TALLYHO_ADMIN_TOKEN, and TALLYHO_ADMIN_ADDRESS if not 127.0.0.1:9001, to be told here)`,
  );
  return 0;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
