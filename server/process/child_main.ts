/**
 * A serving child process: takes its configuration and number leases from the supervisor on
 * stdin, answers on stdout, serves with its own thread pool, and drains and exits when told to
 * or when the supervisor goes away (stdin closes), so no child outlives its supervisor.
 *
 * stdout carries only protocol lines; the child logs to stderr.
 *
 * @module
 */

import process from "node:process";
import { AddressInUseError } from "../host/address_in_use_error.ts";
import type { ServeConfig } from "../config/resolve_config.ts";
import { type RunningServer, startServer } from "../start_server.ts";
import { runtime } from "../adapters/mod.ts";
import { formatLogLine, logFormatFromEnv } from "../log_line.ts";
import { HealthReader } from "./health_reader.ts";
import { readJsonLines, writeJsonLine } from "../common/json_lines.ts";
import type { FromChild, ToChild } from "./_process_messages.ts";
import { statsEveryMs } from "./_stats_every.ts";
import { PendingRequests } from "../common/pending_requests.ts";

/**
 * How often a child looks whether it has run out of numbers, or has some again, to report it at
 * once: `/readyz` must say so while clients are refused. Out means none left at two looks in a
 * row, so a block used up just as the next one arrives is no outage.
 */
const NUMBERS_CHECK_EVERY_MS = 50;

/**
 * The signals the supervisor handles (cli/serve.ts). Sent to a serving process as well, as
 * `kill -HUP $(pidof tallyho)` or a terminal's Ctrl-C (the whole process group) do, each would end
 * it by default and drop its connections: here each is ignored, and the supervisor, which got it
 * too or can be sent it, acts. A child still stops when told to, or when its supervisor is gone
 * (stdin closes); the supervisor ends a stuck one with SIGKILL.
 */
const SUPERVISOR_SIGNALS = [
  "SIGHUP",
  "SIGINT",
  "SIGTERM",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
] as const;

function ignoreSignals(log: (line: string) => void): void {
  for (const signal of SUPERVISOR_SIGNALS) {
    let said = false;
    process.on(signal, () => {
      // Ctrl-C and a stop reach every process at once: nothing to say. The others are said
      // once, so that an operator who sent one to this pid alone learns where it goes.
      if (said || signal === "SIGINT" || signal === "SIGTERM") return;
      said = true;
      log(`${signal} ignored: signals go to the supervisor (pid ${process.ppid})`);
    });
  }
}

/**
 * Runs this process as a child of a supervisor until told to stop.
 *
 * @returns The exit code.
 */
export function runChild(): Promise<number> {
  const stdio = runtime.openStdio();
  const send = (message: FromChild) => writeJsonLine(stdio.sink, message);
  const leases = new PendingRequests<number>();
  let server: RunningServer | null = null;
  let statsTimer: ReturnType<typeof setInterval> | undefined;
  let numbersTimer: ReturnType<typeof setInterval> | undefined;
  let index = -1;
  let stopping = false;
  /** The configuration generation the server serves with. */
  let generation = 0;
  /**
   * The newest configuration sent while the server was still starting, and the acknowledgements
   * owed for it: answered only once the server exists and serves with it.
   */
  let early: { config: ServeConfig; generation: number; ids: number[] } | null = null;
  const format = logFormatFromEnv(process.env);
  // A child only writes about problems, but for a change of its thread count.
  const log = (line: string) =>
    console.error(
      formatLogLine(
        format,
        /^threads: /.test(line) ? "info" : "warn",
        `tallyho[process ${index}]: ${line}`,
      ),
    );

  ignoreSignals(log);
  const health = new HealthReader(log);

  const leaseNumbers = (count: number) =>
    leases.ask((id) => void send({ type: "lease", id, count }));

  return new Promise((resolveExit) => {
    const stop = async (code: number) => {
      if (stopping) return;
      stopping = true;
      clearInterval(statsTimer);
      clearInterval(numbersTimer);
      leases.failAll(new Error("stopping"));
      if (server) {
        await server.shutdown();
        await send({
          type: "drained",
          threads: server.stats(),
          remaining: server.numbersRemaining(),
        });
      }
      resolveExit(code);
    };

    readJsonLines<ToChild>(stdio.source, {
      onMessage: async (message) => {
        switch (message.type) {
          case "start":
            index = message.index;
            try {
              server = await startServer(message.config, {
                log,
                leaseNumbers,
                joinPort: message.port,
                leaseFirst: message.leaseFirst === true,
                onCrashLoop: (reason) => {
                  log(`threads are crashing in a loop (${reason}); exiting`);
                  stop(1);
                },
              });
              generation = Math.max(generation, message.generation);
              if (early !== null && early.generation > generation) {
                const pending = early;
                await server.configure(pending.config);
                generation = Math.max(generation, pending.generation);
              }
              for (const id of early?.ids ?? []) await send({ type: "ack", id, generation });
              early = null;
              await send({
                type: "listening",
                port: server.port,
                pid: process.pid,
                remaining: server.numbersRemaining(),
              });
              let emptyLooks = 0;
              let reportedOut = server.numbersRemaining() === 0;
              numbersTimer = setInterval(() => {
                if (!server) return;
                emptyLooks = server.numbersRemaining() === 0 ? emptyLooks + 1 : 0;
                const out = emptyLooks >= 2;
                if (out === reportedOut) return;
                reportedOut = out;
                send({
                  type: "stats",
                  threads: server.stats(),
                  remaining: server.numbersRemaining(),
                });
              }, NUMBERS_CHECK_EVERY_MS);
              statsTimer = setInterval(() => {
                if (server) {
                  send({
                    type: "stats",
                    threads: server.stats(),
                    remaining: server.numbersRemaining(),
                    health: health.read(),
                  });
                }
              }, statsEveryMs(process.env));
            } catch (error) {
              const code = error instanceof AddressInUseError ? "EADDRINUSE" : "START_FAILED";
              await send({ type: "failed", code, message: (error as Error).message });
              resolveExit(1);
            }
            break;
          case "grant":
            leases.answer(message.id, message.first);
            break;
          case "deny":
            leases.fail(message.id, new Error(message.message));
            break;
          case "configure":
            if (server === null) {
              // Still starting: apply it once the server exists, and acknowledge only then.
              const newer = early === null || message.generation > early.generation;
              early = {
                config: newer ? message.config : early!.config,
                generation: newer ? message.generation : early!.generation,
                ids: [...(early?.ids ?? []), message.id],
              };
              break;
            }
            await server.configure(message.config);
            generation = Math.max(generation, message.generation);
            await send({ type: "ack", id: message.id, generation });
            break;
          case "pause":
          case "resume":
            await server?.setPaused(message.type === "pause");
            await send({ type: "ack", id: message.id });
            break;
          case "drain":
            await stop(0);
            break;
        }
      },
      // The supervisor is gone (exited, or killed with -9): drain rather than serve on unsupervised.
      onEnd: () => stop(0),
      onBadLine: (line) => log(`ignoring a line from the supervisor that is not JSON: ${line}`),
    });
  });
}
