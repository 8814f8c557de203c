/**
 * {@linkcode TlsFetchFactory} on Bun: its `fetch` takes a `tls` option per request (Bun 1.4.5).
 *
 * @module
 */

import type { TlsFetchFactory } from "./tls_fetch.ts";

/** Makes a `fetch` that passes the CA and client certificate to every request. */
export const tlsFetchBun: TlsFetchFactory = ({ ca, cert, key }) => {
  const tls = {
    ...(ca === null ? {} : { ca }),
    ...(cert === null ? {} : { cert }),
    ...(key === null ? {} : { key }),
  };
  return ((input: RequestInfo | URL, init: RequestInit = {}) =>
    fetch(input, { ...init, tls } as RequestInit)) as typeof fetch;
};
