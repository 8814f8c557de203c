/**
 * Bun, as tallyho uses it: one object behind {@linkcode RuntimeAdapter}. The compiled binary is
 * Bun.
 *
 * @module
 */

import { tryLockFileBun } from "./bun_file_lock.ts";
import { serveHttpBun } from "./bun_http.ts";
import { listenBun } from "./bun_listener.ts";
import { tlsFetchBun } from "./bun_tls_fetch.ts";
import { openStdioBun } from "./bun_stdio.ts";
import { openUnixDatagramBun } from "./bun_unix_datagram.ts";
import { relayInheritedNodeNet, relayNodeNet } from "./_node_net_relay.ts";
import type { RuntimeAdapter } from "./runtime_adapter.ts";

/** Bun's adapter. */
export const bunAdapter: RuntimeAdapter = {
  runtime: "bun",
  get version(): string {
    return (globalThis as unknown as { Bun: { version: string } }).Bun.version;
  },
  // Bun upgrades the plain socket to TLS after the header (`upgradeTLS` with the bytes read).
  capabilities: { tlsAfterProxyHeader: null },
  listen: listenBun,
  serveHttp: serveHttpBun,
  tlsFetch: tlsFetchBun,
  tryLockFile: tryLockFileBun,
  openUnixDatagram: openUnixDatagramBun,
  openStdio: openStdioBun,
  // Bun 1.4.5's node:child_process leaves O_NONBLOCK set on a socket it passes to a child.
  adminHttp: {
    serve: serveHttpBun,
    relay: relayNodeNet,
    inherited: relayInheritedNodeNet,
    afterPassing: null,
  },
};
