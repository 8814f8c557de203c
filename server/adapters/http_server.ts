/**
 * The seam between the core and a runtime for HTTP: what serving a `fetch` handler must do. The
 * admin API is a Hono app, which is such a handler.
 *
 * @module
 */

import type { Runtime } from "../runtime.ts";

/** A web-standard request handler, such as a Hono app's `fetch`. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** Options for {@linkcode ServeHttp}. */
export interface ServeHttpOptions {
  /**
   * Address to listen on.
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * TCP port; `0` picks a free one (see {@linkcode HttpServer.port}).
   * @default {0}
   */
  port?: number;
  /**
   * A Unix socket to listen on instead of `hostname` and `port` (the capped admin server's inner
   * server, see capped_http.ts); `port` then reads 0.
   * @default {undefined}
   */
  path?: string;
}

/** A running HTTP server. */
export interface HttpServer {
  /** Which adapter serves it. */
  readonly runtime: Runtime;
  /** The port actually bound. */
  readonly port: number;
  /** Stops accepting, lets requests in flight finish, closes idle connections. */
  stop(): Promise<void>;
}

/** Serves a fetch handler on the current runtime. */
export type ServeHttp = (fetch: FetchHandler, options?: ServeHttpOptions) => HttpServer;

/**
 * What an adapter answers when the handler itself throws: a bare 500 that shows no stack trace.
 *
 * @returns A JSON error response.
 */
export function internalError(): Response {
  return new Response(
    JSON.stringify({ error: { status: 500, message: "Internal error" } }),
    { status: 500, headers: { "content-type": "application/json" } },
  );
}
