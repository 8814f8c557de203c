/**
 * Test fixture: the admin app over a memory backend, driven with `app.request()` (no socket).
 *
 * @module
 */

import { createAdminApp } from "../admin/app.ts";
import { type AdminBackend, MemoryBackend, type MemoryBackendOptions } from "../admin/mod.ts";
import type { ThreadFigures } from "../server/threads/thread_stats.ts";
import { STAT_NAMES } from "../server/threads/thread_stats.ts";

/** The token every fixture app requires. */
export const TOKEN = "test-token-5f0c2a9e1b7d4c63";
/** The port the fixture app believes it is served on. */
export const ADMIN_PORT = 9001;
/** The address requests are made to. */
export const BASE = `http://127.0.0.1:${ADMIN_PORT}`;

/** A request as a test writes it. */
export interface Call {
  method?: string;
  /** Headers over the defaults (Host and Authorization); `null` removes a default. */
  headers?: Record<string, string | null>;
  /** Sent as `application/json` unless `headers` says otherwise. */
  json?: unknown;
  /** Sent as is. */
  body?: BodyInit;
}

/** The app, its backend and what it logged. */
export interface Fixture {
  backend: MemoryBackend;
  lines: string[];
  call(path: string, call?: Call): Promise<Response>;
}

/**
 * Builds the app over a memory backend (port 9000, 2 threads by default).
 *
 * @param options Backend options; `clock` is a mutable clock for the app and backend.
 * @returns The fixture.
 */
export function adminFixture(
  options: MemoryBackendOptions & {
    clock?: { now: number };
    backend?: AdminBackend;
    allowedHosts?: string[];
  } = {},
): Fixture {
  const clock = options.clock;
  const now = clock ? () => clock.now : Date.now;
  const lines: string[] = [];
  // The backend's keeper writes the one line a configuration change gets, as a server does.
  const backend = new MemoryBackend({
    now,
    log: (line) => lines.push(line),
    ...options,
    config: { port: 9000, ...options.config },
  });
  const app = createAdminApp(options.backend ?? backend, {
    token: TOKEN,
    port: ADMIN_PORT,
    log: (line) => lines.push(line),
    now,
    allowedHosts: options.allowedHosts ?? [],
  });
  return {
    backend,
    lines,
    call(path, call = {}) {
      const headers = new Headers({
        host: `127.0.0.1:${ADMIN_PORT}`,
        authorization: `Bearer ${TOKEN}`,
      });
      let body = call.body;
      if (call.json !== undefined) {
        headers.set("content-type", "application/json");
        body = JSON.stringify(call.json);
      }
      for (const [name, value] of Object.entries(call.headers ?? {})) {
        if (value === null) headers.delete(name);
        else headers.set(name, value);
      }
      const init: RequestInit = { method: call.method ?? "GET", headers };
      if (body !== undefined) init.body = body;
      return Promise.resolve(app.request(BASE + path, init));
    },
  };
}

/**
 * A thread's figures with every field 0 but those given.
 *
 * @param figures The fields to set.
 * @returns Complete figures.
 */
export function figures(figures: Partial<ThreadFigures>): ThreadFigures {
  return {
    ...Object.fromEntries(STAT_NAMES.map((name) => [name, 0])) as ThreadFigures,
    ...figures,
  };
}

/**
 * Reads an error answer and checks its shape.
 *
 * @param response The answer.
 * @returns Its `error` member.
 */
export async function errorOf(
  response: Response,
): Promise<{ status: number; message: string; field?: string }> {
  const body = await response.json() as {
    error: { status: number; message: string; field?: string };
  };
  if (body.error?.status !== response.status || typeof body.error.message !== "string") {
    throw new Error(`not an error body for ${response.status}: ${JSON.stringify(body)}`);
  }
  return body.error;
}
