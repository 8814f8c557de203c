/**
 * Deno, as tallyho uses it: one object behind {@linkcode RuntimeAdapter}.
 *
 * @module
 */

import { tryLockFileDeno } from "./deno_file_lock.ts";
import { serveHttpDeno } from "./deno_http.ts";
import { listenDeno } from "./deno_listener.ts";
import { tlsFetchDeno } from "./deno_tls_fetch.ts";
import { openStdioDeno } from "./deno_stdio.ts";
import { openUnixDatagramDeno } from "./deno_unix_datagram.ts";
import { setNonBlocking } from "./descriptor_flags.ts";
import { relayDeno } from "./_deno_relay.ts";
import { relayInheritedNodeNet } from "./_node_net_relay.ts";
import type { RuntimeAdapter } from "./runtime_adapter.ts";

/** Deno's adapter. */
export const denoAdapter: RuntimeAdapter = {
  runtime: "deno",
  get version(): string {
    return (globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno;
  },
  capabilities: {
    // Deno 2.9's own API has no server-side `startTls` (denoland/deno#18451); its node:tls can
    // wrap a node:net socket server-side (denoland/deno#33303), but this adapter listens with
    // `Deno.listen`, not node:net, whose accept loop stalled under descriptor pressure here (see
    // _deno_relay.ts).
    tlsAfterProxyHeader: "Deno 2.9 cannot start TLS on an accepted connection: it has no " +
      "server-side startTls, denoland/deno#18451",
  },
  listen: listenDeno,
  serveHttp: serveHttpDeno,
  tlsFetch: tlsFetchDeno,
  tryLockFile: tryLockFileDeno,
  openUnixDatagram: openUnixDatagramDeno,
  openStdio: openStdioDeno,
  adminHttp: {
    serve: serveHttpDeno,
    relay: relayDeno,
    inherited: relayInheritedNodeNet,
    // Deno 2.9.6's node:child_process clears O_NONBLOCK on a socket it passes to a child (on
    // the open socket both processes share); set it again.
    afterPassing: setNonBlocking,
  },
};
