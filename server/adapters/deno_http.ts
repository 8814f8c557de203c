/**
 * Serves a fetch handler with `Deno.serve`.
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

/**
 * Serves `fetch` on Deno.
 *
 * @param fetch The handler.
 * @param options Address and port.
 * @returns The running server.
 * @throws {AddressInUseError} When the address is taken.
 */
export function serveHttpDeno(fetch: FetchHandler, options: ServeHttpOptions = {}): HttpServer {
  const hostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? 0;
  let server: Deno.HttpServer<Deno.NetAddr> | Deno.HttpServer<Deno.UnixAddr>;
  try {
    // onListen replaces Deno's own "Listening on ..." line: the caller logs the address.
    server = options.path === undefined
      ? Deno.serve({ hostname, port, onListen: () => {}, onError: internalError }, fetch)
      : Deno.serve({ path: options.path, onListen: () => {}, onError: internalError }, fetch);
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new AddressInUseError(
        `Cannot serve HTTP on ${hostname}:${port}: the address is in use`,
      );
    }
    throw error;
  }
  return {
    runtime: "deno",
    port: "port" in server.addr ? server.addr.port : 0,
    // Lets requests in flight finish and closes idle keep-alive connections.
    stop: () => server.shutdown(),
  };
}
