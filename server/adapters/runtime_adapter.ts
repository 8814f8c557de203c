/**
 * The one interface a runtime is used through: each runtime's adapter (`bun_adapter.ts`,
 * `deno_adapter.ts`) is one object of this shape, the way srvx's and Hono's adapters each sit
 * behind one interface. The object is chosen once, at an entry point (`cli/`, a worker's entry),
 * and handed down: code below takes the functions it needs as parameters, and what a runtime
 * cannot do reaches validation as data ({@linkcode RuntimeCapabilities}).
 *
 * @module
 */

import type { Runtime } from "../runtime.ts";
import type { serveCappedHttp } from "./capped_http.ts";
import type { TryLockFile } from "./file_lock.ts";
import type { ServeHttp } from "./http_server.ts";
import type { Listen } from "./thread_listener.ts";
import type { TlsFetchFactory } from "./tls_fetch.ts";
import type { OpenStdio } from "./stdio_channel.ts";
import type { OpenUnixDatagram } from "./unix_datagram.ts";

/** What a runtime can and cannot do, as data for the configuration's checks. */
export interface RuntimeCapabilities {
  /**
   * Why this runtime cannot start TLS on a connection after reading a PROXY header, or null when
   * it can: `proxy-protocol` with `tls-cert` is refused where it is not null.
   */
  readonly tlsAfterProxyHeader: string | null;
}

/** A runtime, as tallyho uses it. */
export interface RuntimeAdapter {
  /** Which runtime this is. */
  readonly runtime: Runtime;
  /** Its version, for logs and `--version`. */
  readonly version: string;
  /** What it can and cannot do. */
  readonly capabilities: RuntimeCapabilities;
  /** Starts a thread's listener. */
  readonly listen: Listen;
  /** Serves a fetch handler over HTTP (the admin API's inner server). */
  readonly serveHttp: ServeHttp;
  /** Makes a `fetch` that trusts a given CA and presents a client certificate. */
  readonly tlsFetch: TlsFetchFactory;
  /** Takes a kernel lock (`flock`) on a file that dies with this process. */
  readonly tryLockFile: TryLockFile;
  /** Opens a Unix datagram socket (systemd's `$NOTIFY_SOCKET`). */
  readonly openUnixDatagram: OpenUnixDatagram;
  /** Opens this process's stdin and stdout as a line channel (a serving child's, to its supervisor). */
  readonly openStdio: OpenStdio;
  /** What the capped admin HTTP server needs of the runtime (see capped_http.ts). */
  readonly adminHttp: Parameters<typeof serveCappedHttp>[0];
}
