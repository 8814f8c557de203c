/**
 * The doctor's report as text for a person or as JSON for a program.
 *
 * @module
 */

import type { DoctorReport } from "./diagnose.ts";

const WIDTH = 100;
const INDENT = "       ";

function wrap(text: string, indent: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && indent.length + line.length + 1 + word.length > WIDTH) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines;
}

/**
 * Renders the report for a terminal: one block per setting (verdict, name, value, why, fix),
 * then a count by verdict and how to make `sysctl -w` changes survive a reboot.
 *
 * @param report The findings.
 * @param runtime Which runtime measured the listen backlog, for the heading (`"bun 1.4.5"`).
 * @returns The lines to print.
 */
export function renderText(report: DoctorReport, runtime: string): string[] {
  const lines = [
    `tallyho doctor: this host's TCP settings for a server on the internet (${runtime})`,
  ];
  for (const item of report.items) {
    lines.push("");
    lines.push(`${item.verdict.padEnd(INDENT.length - 1)} ${item.name} = ${item.value ?? "?"}`);
    lines.push(...wrap(item.why, INDENT));
    if (item.fix) lines.push(`${INDENT}fix: ${item.fix}`);
  }
  const count = (verdict: string) => report.items.filter((i) => i.verdict === verdict).length;
  lines.push("");
  lines.push(`${count("ok")} ok, ${count("risky")} risky, ${count("bad")} bad.`);
  if (report.items.some((item) => item.fix?.startsWith("sysctl -w"))) {
    lines.push(
      ...wrap(
        "sysctl -w lasts until the next boot; to keep a setting, also write it as " +
          "'name = value' in /etc/sysctl.d/90-tallyho.conf (applied at boot, or now with " +
          "sysctl --system). Inside a container or network namespace, the net.* settings " +
          "are that namespace's own.",
        "",
      ),
    );
  }
  const plan = report.capacity;
  if (plan !== undefined) {
    const n = plan.connections.toLocaleString("en-US");
    lines.push("");
    lines.push(`For ${n} connections at once on this host:`);
    for (const item of plan.items) {
      lines.push("");
      lines.push(`${item.verdict.padEnd(INDENT.length - 1)} ${item.name} = ${item.value ?? "?"}`);
      lines.push(...wrap(item.why, INDENT));
      if (item.fix) lines.push(`${INDENT}fix: ${item.fix}`);
    }
    lines.push("");
    lines.push(
      ...wrap(
        `Needs ${plan.serverProcesses} serving processes of ` +
          `${plan.perServerProcess.toLocaleString("en-US")} connections: tallyho --processes ` +
          `${plan.serverProcesses} --threads 1; a loopback benchmark also needs ` +
          `${plan.clientProcesses} client processes (tallyho load --workload hold starts them) ` +
          `and ${plan.addresses} addresses.`,
        "",
      ),
    );
  }
  if (report.syncookiesOff) lines.push("SYN cookies are off: exit code 1.");
  else if (report.certificateBad) lines.push("The TLS certificate is unusable: exit code 3.");
  return lines;
}

/**
 * Renders the report as one JSON document: `{ items: [{ name, value, verdict, why, fix }],
 * syncookiesOff }`.
 *
 * @param report The findings.
 * @returns The JSON text.
 */
export function renderJson(report: DoctorReport): string {
  return JSON.stringify(report, null, 2);
}
