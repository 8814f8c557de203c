/**
 * Serves a fetch handler with `Bun.serve`.
 *
 * @module
 */

import {
  type FetchHandler,
  type HttpServer,
  internalError,
  type ServeHttpOptions,
} from "./http_server.ts";
import { AddressInUseError } from "../host/address_in_use_error.ts";

// The few parts of Bun's API this adapter uses, declared here so that shared code never loads
// bun-types (whose globals clash with Deno's).
interface BunServer {
  readonly port: number;
  stop(closeActiveConnections?: boolean): Promise<void>;
}
interface BunGlobal {
  serve(options: {
    hostname?: string;
    port?: number;
    unix?: string;
    fetch: FetchHandler;
    error: (error: Error) => Response;
    development: boolean;
    reusePort: boolean;
  }): BunServer;
}

/**
 * Serves `fetch` on Bun.
 *
 * @param fetch The handler.
 * @param options Address and port.
 * @returns The running server.
 * @throws {AddressInUseError} When the address is taken.
 */
export function serveHttpBun(fetch: FetchHandler, options: ServeHttpOptions = {}): HttpServer {
  const hostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? 0;
  const bun = (globalThis as unknown as { Bun: BunGlobal }).Bun;
  let server: BunServer;
  try {
    // development: false, whatever NODE_ENV says: a development server answers an uncaught error
    // with its stack trace. But outside development Bun 1.4.5 binds with SO_REUSEPORT unless told
    // not to, so a second server on a busy port silently shares it instead of failing
    // (oven-sh/bun#1443): reusePort: false makes that EADDRINUSE again.
    const where = options.path === undefined ? { hostname, port } : { unix: options.path };
    server = bun.serve({
      ...where,
      fetch,
      error: internalError,
      development: false,
      reusePort: false,
    });
  } catch (error) {
    if ((error as { code?: string }).code === "EADDRINUSE") {
      throw new AddressInUseError(
        `Cannot serve HTTP on ${hostname}:${port}: the address is in use`,
      );
    }
    throw error;
  }
  return {
    runtime: "bun",
    port: options.path === undefined ? server.port : 0,
    // Without `true`, Bun lets requests in flight finish and closes idle keep-alive connections.
    stop: () => server.stop(),
  };
}
