/**
 * The error an etcd number source fails with, in a module of its own so the CLI can recognise it
 * without loading the source.
 *
 * @module
 */

/** etcd cannot be used as a number source; the message names the URL and the problem. */
export class EtcdLeaseError extends Error {
  override name = "EtcdLeaseError";
}
