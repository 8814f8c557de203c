/**
 * A `fetch` that trusts a private certificate authority and can present a client certificate:
 * what an `etcds://` number source needs from the runtime. The standard `fetch` takes neither,
 * and each runtime spells them its own way (Bun: a `tls` option on the request; Deno: an HTTP
 * client made with `Deno.createHttpClient`), so each has an adapter and mod.ts picks one.
 *
 * @module
 */

/** PEM texts for {@linkcode TlsFetchFactory}. */
export interface TlsFetchOptions {
  /** The certificate authority to trust, instead of the runtime's usual ones; `null`: those. */
  ca: string | null;
  /** A client certificate to present (with `key`), or `null` for none. */
  cert: string | null;
  /** The client certificate's private key, or `null`. */
  key: string | null;
}

/** Makes a `fetch` with these TLS settings. */
export type TlsFetchFactory = (options: TlsFetchOptions) => typeof fetch;
