/**
 * The error a Redis number source fails with, in a module of its own so the CLI can recognise it
 * without loading the Redis client (which costs every process about 170 ms to load).
 *
 * @module
 */

/** Redis cannot be used as a number source; the message names the URL and the problem. */
export class RedisLeaseError extends Error {
  override name = "RedisLeaseError";
}
