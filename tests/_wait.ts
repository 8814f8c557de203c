/**
 * Test fixture: sleeping and polling. A test never waits out a timer it could poll: it waits
 * until what it needs is true, with a deadline that fails it naming what did not happen.
 *
 * @module
 */

/**
 * Resolves after `ms`. Only for what cannot be polled: a pause that is itself the test's
 * subject (load held for a while, a client that stays silent), never to let something happen.
 *
 * @param ms Milliseconds.
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What is left of `T` once its falsy values are taken out. */
export type Truthy<T> = Exclude<T, false | 0 | "" | null | undefined>;

/** Options for {@linkcode waitUntil}. */
export interface WaitOptions {
  /**
   * What is awaited, for the error when it does not happen; a function is called then (to add
   * what a server printed by that time, say).
   * @default {"the condition"}
   */
  what?: string | (() => string);
  /**
   * How long to wait before failing, in ms.
   * @default {10_000}
   */
  timeoutMs?: number;
  /**
   * How often to ask, in ms.
   * @default {20}
   */
  everyMs?: number;
}

/**
 * Asks `check` until it returns a truthy value, and returns that value; throws, naming `what`
 * and the last value or error, once `timeoutMs` has passed without one. An error thrown by
 * `check` counts as not yet.
 *
 * @param check The condition; may be async.
 * @param options What is awaited, the deadline and the pace.
 * @returns What `check` returned.
 * @example
 * ```ts
 * await waitUntil(async () => (await server.admin("/v1/stats")).ok, { what: "the stats" });
 * ```
 */
export async function waitUntil<T>(
  check: () => T | Promise<T>,
  options: WaitOptions = {},
): Promise<Truthy<T>> {
  const { what = "the condition", timeoutMs = 10_000, everyMs = 20 } = options;
  // The monotonic clock: tests that step Date.now (tests/_wall_clock.ts) wait with this too.
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as Truthy<T>;
      last = value;
    } catch (error) {
      last = error;
    }
    if (performance.now() > deadline) {
      const said = typeof what === "function" ? what() : what;
      throw new Error(`${said}: not within ${timeoutMs} ms (last: ${String(last)})`);
    }
    await sleep(everyMs);
  }
}
