/**
 * Which transport a load thread uses: the runtime's own sockets, or node:net when a source
 * address must be bound. The runtime is the entry point's to name (the load worker, the hold
 * child), as the server's is (server/adapters/mod.ts).
 *
 * @module
 */

import { bunTransport } from "./bun_transport.ts";
import { denoTransport } from "./deno_transport.ts";
import { nodeTransport } from "./node_transport.ts";
import type { MakeTransport } from "./transport.ts";
import type { Runtime } from "../../server/runtime.ts";

export * from "./transport.ts";

/**
 * Picks the transport for this runtime and target.
 *
 * @param source The `--source` address, or `null`.
 * @param runtime The runtime this thread runs on.
 * @returns The transport maker.
 */
export function chooseTransport(source: string | null, runtime: Runtime): MakeTransport {
  if (source !== null) return nodeTransport;
  return runtime === "bun" ? bunTransport : denoTransport;
}
