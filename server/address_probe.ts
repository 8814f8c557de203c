/**
 * Finds out whether an address is free before the threads bind it with SO_REUSEPORT.
 *
 * With SO_REUSEPORT the kernel lets a second process of the same user bind a port that another
 * tallyho already holds, and the two would then share its traffic silently. A probe bind without
 * SO_REUSEPORT fails against any holder, so a busy port is reported instead of shared.
 *
 * @module
 */

import { createServer } from "node:net";
import { AddressInUseError } from "./address_in_use_error.ts";

/**
 * Resolves when `host:port` can be bound; rejects with {@linkcode AddressInUseError} when it
 * cannot. Port 0 is always free.
 *
 * @param host The address.
 * @param port The port.
 */
export function assertAddressFree(host: string, port: number): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", (error: Error & { code?: string }) => {
      if (error.code === "EADDRINUSE") {
        reject(new AddressInUseError(`Cannot listen on ${host}:${port}: the address is in use`));
      } else {
        reject(new Error(`Cannot listen on ${host}:${port}: ${error.message}`));
      }
    });
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}
