/**
 * Finds out whether an address is free before the threads bind it with SO_REUSEPORT.
 *
 * With SO_REUSEPORT the kernel lets a second process of the same user bind a port that another
 * tallyho already holds, and the two would then share its traffic silently. A probe bind without
 * SO_REUSEPORT fails against any holder, so a busy port is reported instead of shared.
 *
 * @module
 */

import { nodeNet } from "../common/lazy_builtins.ts";
import { AddressInUseError } from "./address_in_use_error.ts";

/** An address this machine cannot listen on at all (not its own, or not resolvable). */
export class AddressUnusableError extends Error {
  override name = "AddressUnusableError";
  /**
   * @param message What failed.
   * @param code The system's error code, such as `EADDRNOTAVAIL`.
   */
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

/**
 * Resolves when `host:port` can be bound; rejects with {@linkcode AddressInUseError} when the
 * port is taken and {@linkcode AddressUnusableError} when the host is not one of this machine's
 * addresses. Port 0 is probed too, for the address.
 *
 * @param host The address.
 * @param port The port.
 */
export function assertAddressFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = nodeNet().createServer();
    probe.once("error", (error: Error & { code?: string }) => {
      if (error.code === "EADDRINUSE") {
        reject(new AddressInUseError(`Cannot listen on ${host}:${port}: the address is in use`));
      } else {
        reject(
          new AddressUnusableError(
            `Cannot listen on ${host}:${port}: ${error.message}`,
            error.code ?? "unknown",
          ),
        );
      }
    });
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}
