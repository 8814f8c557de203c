/**
 * The one place a load thread's transport is chosen: the runtime's own sockets, or node:net
 * when a source address must be bound.
 *
 * @module
 */

import { bunTransport } from "./bun_transport.ts";
import { denoTransport } from "./deno_transport.ts";
import { nodeTransport } from "./node_transport.ts";
import type { MakeTransport } from "./transport.ts";

export * from "./transport.ts";

/**
 * Picks the transport for this runtime and target.
 *
 * @param source The `--source` address, or `null`.
 * @returns The transport maker.
 */
export function chooseTransport(source: string | null): MakeTransport {
  if (source !== null) return nodeTransport;
  return "Bun" in globalThis ? bunTransport : denoTransport;
}
