/**
 * {@linkcode TlsFetchFactory} on Deno: one HTTP client made with `Deno.createHttpClient`, passed to
 * every request as `client` (Deno 2.9.6). Its rustls refuses a self-signed CA certificate used as
 * the server's own (`CaUsedAsEndEntity`): the server needs a certificate the CA signed.
 *
 * @module
 */

import type { TlsFetchFactory } from "./tls_fetch.ts";

/** The slice of Deno's API this adapter uses. */
interface DenoHttp {
  createHttpClient(options: { caCerts?: string[]; cert?: string; key?: string }): unknown;
}

/** Makes a `fetch` through one client that trusts the CA and presents the client certificate. */
export const tlsFetchDeno: TlsFetchFactory = ({ ca, cert, key }) => {
  const deno = (globalThis as unknown as { Deno: DenoHttp }).Deno;
  const client = deno.createHttpClient({
    ...(ca === null ? {} : { caCerts: [ca] }),
    ...(cert === null ? {} : { cert }),
    ...(key === null ? {} : { key }),
  });
  return ((input: RequestInfo | URL, init: RequestInit = {}) =>
    fetch(input, { ...init, client } as RequestInit)) as typeof fetch;
};
