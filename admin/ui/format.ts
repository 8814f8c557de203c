/**
 * How the dashboard writes numbers, rates and durations. Pure, so the tests import it.
 *
 * @module
 */

const WHOLE = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const ONE_DECIMAL = new Intl.NumberFormat("en-US", {
  minimumFractionDigits: 1,
  maximumFractionDigits: 1,
});

/**
 * A count with thousands separators.
 *
 * @param value A count.
 * @returns `"1,234,567"`.
 */
export function formatCount(value: number): string {
  return WHOLE.format(value);
}

/**
 * A rate: one decimal below 10, whole numbers above, and `k`/`M` beyond six digits.
 *
 * @param value Per second.
 * @returns `"0.5"`, `"1,234"`, `"1.2M"`.
 */
export function formatRate(value: number): string {
  if (value >= 1e6) return `${ONE_DECIMAL.format(value / 1e6)}M`;
  if (value >= 1e5) return `${WHOLE.format(value / 1e3)}k`;
  return value < 10 ? ONE_DECIMAL.format(value) : WHOLE.format(value);
}

/**
 * Milliseconds the way the configuration writes durations (see `formatDuration` in
 * server/config/config_json.ts, which the page cannot import: it reads files).
 *
 * @param ms Milliseconds.
 * @returns `"10s"` or `"250ms"`.
 */
export function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * An uptime, to the second.
 *
 * @param seconds Seconds.
 * @returns `"42s"`, `"3m 07s"`, `"5h 03m"`, `"2d 04h"`.
 */
export function formatUptime(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d ${pad(Math.floor(s / 3600) % 24)}h`;
}

/**
 * An event-loop delay: one decimal below 10 ms, whole ms above, seconds beyond one.
 *
 * @param ms Milliseconds.
 * @returns `"0.4 ms"`, `"37 ms"`, `"1.2 s"`.
 */
export function formatDelay(ms: number): string {
  if (ms >= 1000) return `${ONE_DECIMAL.format(ms / 1000)} s`;
  return `${ms < 10 ? ONE_DECIMAL.format(ms) : WHOLE.format(ms)} ms`;
}

/**
 * A size in bytes, in binary units.
 *
 * @param bytes A size.
 * @returns `"512 B"`, `"45.3 MiB"`, `"1.2 GiB"`.
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${WHOLE.format(value)} B` : `${ONE_DECIMAL.format(value)} ${units[unit]}`;
}
