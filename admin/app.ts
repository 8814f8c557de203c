/**
 * The admin API as a Hono app that never mentions a runtime: serve its `fetch` with
 * `serveHttp` from `server/adapters/mod.ts`, or test it with `app.request()`.
 *
 * @module
 */

import { type Context, Hono } from "hono";
import { describe } from "../server/common/describe.ts";
import { monotonicNow } from "../server/common/clock.ts";
import type { AdminBackend, ConfigChange } from "./backend.ts";
import { configSchema } from "./config_schema.ts";
import {
  ConfigError,
  ConfigShapeError,
  RestartRequiredError,
  StaleGenerationError,
  StateConflictError,
} from "./errors.ts";
import { fieldOf, HttpError } from "./_http_error.ts";
import { readJsonBody } from "./_json_body.ts";
import { RequestGuard } from "./_request_guard.ts";
import { METRICS_CONTENT_TYPE, renderMetrics } from "./metrics.ts";
import { type ProcessMetrics, readProcessMetrics } from "./process_metrics.ts";
import { ReplyRate } from "./reply_rate.ts";
import { statsView } from "./stats_view.ts";
import { isUiPath, UI_ASSETS, UI_CSP } from "./ui/assets.ts";

/** Options for {@linkcode createAdminApp}. */
export interface AdminAppOptions {
  /**
   * The bearer token every endpoint but `/livez` and `/readyz` requires (see `token.ts`).
   * Required: there is no safe default.
   */
  token: string;
  /**
   * The port the API is served on, for the `Host` and `Origin` checks; a function when it is
   * only known once bound (port 0). Required, for the same reason.
   */
  port: number | (() => number);
  /**
   * The address the API is served on; `Host` may name it, `localhost`, `127.0.0.1` or `[::1]`,
   * with the port.
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * More `Host` values to accept, as `name:port` (for example the name a load balancer uses).
   * @default {[]}
   */
  allowedHosts?: readonly string[];
  /**
   * Receives a line for every applied change (its diff and new generation), every listener
   * action and every internal error. Never given the token.
   * @default {nothing}
   */
  log?: (line: string) => void;
  /**
   * The clock for replies per second, in milliseconds: monotonic, as a step of the wall clock
   * would make a rate out of nothing.
   * @default {monotonicNow}
   */
  now?: () => number;
  /**
   * Reads the `process_*` figures for `/metrics`.
   * @default {readProcessMetrics}
   */
  processMetrics?: () => ProcessMetrics;
}

type Handler = (c: Context) => Promise<Response>;

/**
 * Paths anyone may read: a probe carries no token and may name the pod's own address. The capped
 * server answers them itself, outside the slots of the other requests (see
 * server/adapters/capped_http.ts).
 */
export const ADMIN_PROBE_PATHS: readonly string[] = ["/livez", "/readyz"];
const PROBES = new Set(ADMIN_PROBE_PATHS);

function etag(generation: number): string {
  return `"${generation}"`;
}

/** Whether an `If-Match` / `If-None-Match` list names the tag (`weak`: W/ prefixes ignored). */
function listMatches(header: string, tag: string, weak: boolean): boolean {
  return header.split(",").some((item) => {
    const value = item.trim();
    if (value === "*") return true;
    return (weak ? value.replace(/^W\//, "") : value) === tag;
  });
}

/**
 * The generations an `If-Match` list accepts (strong comparison: weak tags never match), or
 * undefined for `*`, which matches whatever is current and so pins nothing.
 */
function generationsMatched(header: string): number[] | undefined {
  const generations: number[] = [];
  for (const item of header.split(",")) {
    const value = item.trim();
    if (value === "*") return undefined;
    const tag = /^"(\d+)"$/.exec(value);
    if (tag) generations.push(Number(tag[1]));
  }
  return generations;
}

/**
 * Creates the admin API.
 *
 * | endpoint | |
 * | --- | --- |
 * | `GET /livez`, `GET /readyz` | probes, no token; `/readyz` is 503 unless running |
 * | `GET /`, `GET /ui/*` | the dashboard's page and files, no token (they hold no data) |
 * | `GET /metrics` | Prometheus text |
 * | `GET /v1/info`, `GET /v1/stats` | JSON |
 * | `GET /v1/stats/history` | the last ten minutes, one sample a second, oldest first |
 * | `GET /v1/config`, `PATCH /v1/config` | merge patch, `ETag` / `If-Match` |
 * | `GET /v1/config/schema` | each key's type, bounds or choices, and whether it is live |
 * | `POST /v1/config/validate` | checks a patch without applying it |
 * | `POST /v1/listener/pause`, `POST /v1/listener/resume`, `POST /v1/drain` | listener state |
 * | `POST /v1/upgrade` | 202: a new supervisor tree takes over (see cli/upgrade.ts) |
 *
 * @param backend The server it administers.
 * @param options The token, the address it is served on, logging.
 * @returns A Hono app; serve `app.fetch`.
 * @throws {TypeError} When the token or port is missing.
 *
 * @example
 * ```ts
 * const app = createAdminApp(new MemoryBackend(), { token: "secret", port: 9001 });
 * const res = await app.request("http://127.0.0.1:9001/v1/info", {
 *   headers: { authorization: "Bearer secret" },
 * });
 * ```
 */
export function createAdminApp(backend: AdminBackend, options: AdminAppOptions): Hono {
  if (typeof options.token !== "string" || options.token.length === 0) {
    throw new TypeError("The admin API needs a non-empty 'token': got none");
  }
  const port = options.port;
  if (typeof port !== "function" && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new TypeError(
      `The admin API needs 'port' (an integer from 0 to 65535, or a function): got ${
        describe(port)
      }`,
    );
  }
  const log = options.log ?? (() => {});
  const now = options.now ?? monotonicNow;
  const processMetrics = options.processMetrics ?? readProcessMetrics;
  const guard = new RequestGuard({
    token: options.token,
    hostname: options.hostname ?? "127.0.0.1",
    port: typeof port === "function" ? port : () => port,
    allowedHosts: options.allowedHosts ?? [],
  });
  const replyRate = new ReplyRate();
  const app = new Hono();

  app.use("*", async (c, next) => {
    const probe = PROBES.has(c.req.path);
    if (!probe) guard.checkHost(c.req.raw);
    guard.checkOrigin(c.req.raw);
    // The dashboard's files hold no data; the page sends the token with its own API calls.
    if (!probe && !isUiPath(c.req.path)) guard.checkToken(c.req.raw);
    await next();
    c.header("cache-control", "no-store");
    c.header("x-content-type-options", "nosniff");
  });

  // Configuration calls: a ConfigError is the client's mistake, and names the field. A TypeError
  // or RangeError is a bug and falls through to the 500 below.
  async function configCall(call: () => ConfigChange | Promise<ConfigChange>) {
    try {
      return await call();
    } catch (error) {
      if (error instanceof ConfigError && !(error instanceof RestartRequiredError)) {
        const field = error.field ?? fieldOf(error.message);
        throw new HttpError(
          error instanceof ConfigShapeError ? 400 : 422,
          error.message,
          field === undefined ? {} : { field },
        );
      }
      throw error;
    }
  }

  async function patchBody(c: Context): Promise<unknown> {
    const body = await readJsonBody(c.req.raw);
    if (body === undefined) {
      throw new HttpError(400, "The request needs a JSON body: a merge patch object");
    }
    return body;
  }

  async function listenerAction(
    c: Context,
    action: "pause" | "resume" | "drain",
  ): Promise<Response> {
    await readJsonBody(c.req.raw); // Optional and ignored, but held to the same rules.
    await backend[action]();
    const { state } = await backend.info();
    log(`admin: ${action}: listener ${state}`);
    return c.json({ state }, action === "drain" ? 202 : 200);
  }

  const schema = configSchema();

  const routes: Record<string, Record<string, Handler>> = {
    ...Object.fromEntries(
      [...UI_ASSETS].map(([path, asset]) => [path, {
        GET: (c: Context) =>
          Promise.resolve(c.body(asset.body, 200, {
            "content-type": asset.contentType,
            "content-security-policy": UI_CSP,
            "referrer-policy": "no-referrer",
            "x-frame-options": "DENY",
          })),
      }]),
    ),
    "/livez": { GET: (c) => Promise.resolve(c.json({ live: true })) },
    "/readyz": {
      GET: async (c) => {
        const { state, numbersAvailable = true } = await backend.info();
        const ready = state === "running" && numbersAvailable;
        return c.json({ ready, state, numbersAvailable }, ready ? 200 : 503);
      },
    },
    "/metrics": {
      GET: async (c) => {
        const [info, processes, { config }] = await Promise.all([
          backend.info(),
          backend.stats(),
          backend.config(),
        ]);
        const text = renderMetrics({ info, processes, process: processMetrics(), config });
        return c.body(text, 200, { "content-type": METRICS_CONTENT_TYPE });
      },
    },
    "/v1/info": { GET: async (c) => c.json(await backend.info()) },
    "/v1/stats": {
      GET: async (c) => {
        const processes = await backend.stats();
        return c.json(statsView(processes, replyRate.measure(processes, now())));
      },
    },
    "/v1/stats/history": {
      GET: async (c) =>
        c.json(
          await backend.history?.() ??
            { intervalSeconds: 1, capacity: 0, bytes: 0, samples: [] },
        ),
    },
    "/v1/config": {
      GET: async (c) => {
        const { generation, config } = await backend.config();
        const tag = etag(generation);
        const ifNoneMatch = c.req.header("if-none-match");
        if (ifNoneMatch !== undefined && listMatches(ifNoneMatch, tag, true)) {
          return c.body(null, 304, { etag: tag });
        }
        return c.json(config, 200, { etag: tag });
      },
      PATCH: async (c) => {
        const patch = await patchBody(c);
        const ifMatch = c.req.header("if-match");
        const ifGeneration = ifMatch === undefined ? undefined : generationsMatched(ifMatch);
        // The keeper checks the generation in the same step as the change, and logs it once.
        const change = await configCall(() =>
          backend.applyConfig(patch, ifGeneration === undefined ? {} : { ifGeneration })
        );
        const warnings = change.warnings ?? [];
        if (warnings.length > 0) {
          // RFC 7234's Warning (299: a persistent warning) says what was lowered to fit the host;
          // the body shows the values in force.
          return c.json(change.config, 200, {
            etag: etag(change.generation),
            warning: warnings.map((text) => `299 tallyho ${JSON.stringify(text)}`).join(", "),
          });
        }
        return c.json(change.config, 200, { etag: etag(change.generation) });
      },
    },
    "/v1/config/schema": { GET: (c) => Promise.resolve(c.json(schema)) },
    "/v1/config/validate": {
      POST: async (c) => {
        const patch = await patchBody(c);
        const change = await configCall(() => backend.validateConfig(patch));
        return c.json({ valid: true, ...change });
      },
    },
    "/v1/listener/pause": { POST: (c) => listenerAction(c, "pause") },
    "/v1/listener/resume": { POST: (c) => listenerAction(c, "resume") },
    "/v1/drain": { POST: (c) => listenerAction(c, "drain") },
    "/v1/upgrade": {
      POST: async (c) => {
        await readJsonBody(c.req.raw); // Optional and ignored, but held to the same rules.
        if (backend.upgrade === undefined) {
          throw new HttpError(501, "This server cannot upgrade itself");
        }
        // Answered at once: the upgrade ends with this tree's admin API stopping.
        const event = await backend.upgrade();
        log(`admin: upgrade: started a new supervisor (pid ${event.pid})`);
        return c.json(event, 202);
      },
    },
  };

  for (const [path, handlers] of Object.entries(routes)) {
    for (const [method, handler] of Object.entries(handlers)) app.on(method, path, handler);
    // Hono answers HEAD from the GET route.
    const allow = [...Object.keys(handlers), ...("GET" in handlers ? ["HEAD"] : [])].join(", ");
    app.all(path, () => {
      throw new HttpError(405, `${path} answers only ${allow}`, { headers: { allow } });
    });
  }

  function errorResponse(c: Context, failure: HttpError): Response {
    const headers = {
      ...failure.headers,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    };
    return c.json(failure.body(), failure.status as 400, headers);
  }

  app.notFound((c) => errorResponse(c, new HttpError(404, `No endpoint at ${c.req.path}`)));

  app.onError((error, c) => {
    if (error instanceof HttpError) return errorResponse(c, error);
    if (error instanceof RestartRequiredError) {
      return errorResponse(
        c,
        new HttpError(409, error.message, error.field === undefined ? {} : { field: error.field }),
      );
    }
    if (error instanceof StateConflictError) {
      return errorResponse(c, new HttpError(409, error.message));
    }
    if (error instanceof StaleGenerationError) {
      return errorResponse(c, new HttpError(412, error.message, { field: "if-match" }));
    }
    log(`admin: ${c.req.method} ${c.req.path} failed: ${error.stack ?? error.message}`);
    return errorResponse(c, new HttpError(500, "Internal error; the server's log has the details"));
  });

  return app;
}
