/// <reference lib="dom" />
/**
 * The number-source panel: where numbers come from and how leasing goes (from `/v1/info`'s
 * `numbers`), and each process's side of it (its `leasing` and the numbers it holds).
 *
 * @module
 */

import type { AdminInfo } from "../backend.ts";
import { make } from "./_dom.ts";
import { formatCount, formatDelay, formatUptime } from "./format.ts";

/**
 * Fills `#source-facts` and `#source-processes`.
 *
 * @param info A `/v1/info` answer.
 * @param now The time now, in milliseconds since the epoch (for the durable mark's age).
 */
export function renderNumbersPanel(info: AdminInfo, now: number): void {
  const numbers = info.numbers;
  const facts: Array<[string, string, (string | undefined)?]> = [];
  if (numbers !== undefined) {
    facts.push(
      ["kind", numbers.kind ?? numbers.description.split(" ")[0] ?? "–"],
      ["source", numbers.description],
      [
        "reachable",
        numbers.connected ? "yes" : "no: serving from leased numbers",
        numbers.connected ? undefined : "error",
      ],
      ["leases", formatCount(numbers.leases)],
      ["failed", formatCount(numbers.leaseErrors)],
      [
        "last lease",
        numbers.lastLeaseMs == null ? "none yet" : formatDelay(numbers.lastLeaseMs),
      ],
      ["next to lease", formatCount(numbers.next)],
    );
    if ((numbers.leasesRefused ?? 0) > 0) {
      facts.push(["refused (behind)", formatCount(numbers.leasesRefused!)]);
    }
    if (numbers.durableMark !== undefined) {
      const age = numbers.durableAt == null
        ? "read at start"
        : `written ${formatUptime(Math.max(0, (now - numbers.durableAt) / 1000))} ago`;
      facts.push(["durable mark", `${formatCount(numbers.durableMark)} (${age})`]);
    }
    if (numbers.lastError !== null) facts.push(["last error", numbers.lastError, "error"]);
  }
  document.getElementById("source-facts")!.replaceChildren(
    ...facts.map(([term, value, className]) =>
      make(
        "div",
        {},
        make("dt", {}, term),
        make("dd", className === undefined ? {} : { className }, value),
      )
    ),
  );
  const rows = (info.processes ?? []).map((process) => {
    const leasing = process.leasing;
    const cell = (value: string) => make("td", {}, value);
    return make(
      "tr",
      {},
      make("th", { scope: "row" }, `process ${process.index}`),
      cell(leasing === undefined ? "–" : formatCount(leasing.leases)),
      cell(leasing === undefined ? "–" : formatCount(leasing.blocksLeased)),
      cell(process.numbersRemaining === undefined ? "–" : formatCount(process.numbersRemaining)),
      cell(leasing === undefined ? "–" : formatCount(leasing.leaseErrors)),
      cell(leasing?.lastLeaseMs == null ? "–" : formatDelay(leasing.lastLeaseMs)),
    );
  });
  document.getElementById("source-processes")!.replaceChildren(...rows);
}
