/**
 * `tallyho doctor [--json]`: says, setting by setting, whether this host's TCP settings stand up
 * to floods, and the command that fixes each one that does not.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { RUNTIME, runtime, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { diagnose, type DoctorOptions } from "../server/doctor/diagnose.ts";
import { renderJson, renderText } from "../server/doctor/render.ts";
import { type CliIo, consoleIo, EXIT_USAGE, usageErrorFrom } from "./_io.ts";

/** Exit code when SYN cookies are off. */
export const EXIT_SYNCOOKIES_OFF = 1;
/** Exit code when the certificate given with --tls-cert has expired or cannot be read. */
export const EXIT_CERTIFICATE_BAD = 3;

/** The usage text printed by `tallyho doctor --help`. */
export function doctorUsage(): string {
  return `Usage: tallyho doctor [--json] [--tls-cert FILE] [--connections N]

Reads this host's TCP settings (net.ipv4.tcp_syncookies, tcp_max_syn_backlog, tcp_synack_retries,
net.core.somaxconn, tcp_abort_on_overflow, tcp_migrate_req, ip_local_port_range), the open-file
limit and the listen backlog the runtime really gets, and says for each what is ok, what is risky
and the command that changes it. Under 'ip netns exec NAME' it reports that namespace. With
--tls-cert it also says how long the listener's certificate has left (risky under 14 days).

Options:
  --json            print the findings as JSON: { items: [{ name, value, verdict, why, fix }] }
  --tls-cert FILE   also check this PEM certificate's expiry (the server's --tls-cert)
  --connections N   also size this host for N connections at once: open files per process,
                    fs.nr_open, fs.file-max, net.ipv4.tcp_mem, somaxconn, ephemeral ports,
                    memory available, and how many serving processes N needs here (JSON:
                    "capacity")
  -h, --help        show this text

Exit codes: 0 done, 1 SYN cookies are off, 2 bad command line, 3 the certificate has expired
or cannot be read.`;
}

const FLAGS = {
  json: { type: "boolean" },
  "tls-cert": { type: "string" },
  connections: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Runs `tallyho doctor`.
 *
 * @param args The arguments after `doctor`.
 * @param io Where to write; defaults to the console.
 * @param options Where to read the host from; tests pass fake `/proc` values.
 * @returns 0, 1 when SYN cookies are off, 2 for a bad command line, 3 when the certificate
 *   given has expired or cannot be read.
 *
 * @example
 * ```ts
 * const code = await doctorMain(["--json"]);
 * ```
 */
export async function doctorMain(
  args: string[],
  io: CliIo = consoleIo,
  options: DoctorOptions = {},
): Promise<number> {
  let values;
  try {
    values = parseArgs({ args, options: FLAGS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    io.err(`tallyho: ${usageErrorFrom(error as Error).message}`);
    io.err(`Run 'tallyho doctor --help' for usage.`);
    return EXIT_USAGE;
  }
  if (values.help) {
    io.out(doctorUsage());
    return 0;
  }
  if (values.connections !== undefined) {
    const text = values.connections;
    if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 100_000_000) {
      io.err(
        `tallyho: 'connections' must be a whole number from 1 to 100000000: got ${
          JSON.stringify(text)
        }`,
      );
      io.err(`Run 'tallyho doctor --help' for usage.`);
      return EXIT_USAGE;
    }
    options = { ...options, connections: Number(text) };
  }
  const tlsCert = values["tls-cert"];
  // The one wall-clock read: a certificate's expiry is a time of day.
  const report = await diagnose(
    tlsCert === undefined
      ? { listen: runtime.listen, ...options }
      : { now: Date.now(), listen: runtime.listen, ...options, tlsCert },
  );
  if (values.json) io.out(renderJson(report));
  else for (const line of renderText(report, `${RUNTIME} ${RUNTIME_VERSION}`)) io.out(line);
  if (report.syncookiesOff) return EXIT_SYNCOOKIES_OFF;
  return report.certificateBad ? EXIT_CERTIFICATE_BAD : 0;
}
