/**
 * Opens where a server's numbers come from: an etcd or Redis key (`numbers`), a state file (`state`), or
 * memory. Nothing above the returned `LeaseSource` knows which kind it is.
 *
 * @module
 */

import process from "node:process";
import type { TryLockFile } from "../adapters/file_lock.ts";
import type { TlsFetchFactory } from "../adapters/tls_fetch.ts";
import type { ServeConfig } from "../config/resolve_config.ts";
import { isEtcdUrl } from "./sources/etcd/etcd_url.ts";
import { type LeaseSource, MemoryLeaseSource } from "./lease_source.ts";
import { readRedisPassword } from "./sources/redis/redis_password.ts";
import { parseRedisUrl } from "./sources/redis/redis_url.ts";
import { StateFileLeaseSource } from "./sources/state_file/state_file.ts";
import { readTlsFiles } from "../tls/tls_files.ts";

/**
 * Opens the configured number source.
 *
 * @param config The resolved configuration.
 * @param log Receives the source's own lines (a Redis connection lost and back).
 * @param options `runtime`: the runtime's file lock and TLS fetch (from the runtime adapter);
 * `above`: the highest number the tree handing over in an upgrade ever leased (or, after a
 * failed one, that the new tree reported): numbers in memory and a state file start above it.
 * A state file is this server's alone, so a file that records less (new, or memory before)
 * is simply behind, and numbering from it would be refused as going backwards until it caught
 * up. A Redis or etcd key is shared and keeps its own mark; the guard refuses it if behind.
 * @returns The open source.
 * @throws {StateFileError | RedisLeaseError | EtcdLeaseError | RedisPasswordError} Naming the problem.
 * @throws {ConfigError} When the etcd client certificate or key cannot be read, is not PEM, or
 * the key is not the certificate's.
 */
export async function openLeaseSource(
  config: ServeConfig,
  log: (line: string, level?: "info" | "warn") => void,
  options: {
    runtime: { tryLockFile: TryLockFile; tlsFetch: TlsFetchFactory };
    above?: number;
  },
): Promise<LeaseSource> {
  const { runtime, above = 0 } = options;
  if (config.numbers !== null && isEtcdUrl(config.numbers)) {
    const { EtcdLeaseSource } = await import("./sources/etcd/etcd_lease_source.ts");
    let clientCertificate = null;
    if (config.numbersCertFile !== null && config.numbersKeyFile !== null) {
      // Read and checked as the listener's are: PEM, the key the certificate's own, and a key
      // file other users can read is warned about (like the admin token's).
      const files = readTlsFiles(config.numbersCertFile, config.numbersKeyFile, {
        certFlag: "numbers-cert-file",
        keyFlag: "numbers-key-file",
        keyName: "etcd client key",
      });
      for (const warning of files.warnings) log(warning, "warn");
      clientCertificate = { cert: files.cert, key: files.key, file: config.numbersCertFile };
    }
    return await EtcdLeaseSource.open(config.numbers, {
      // The file only: TALLYHO_REDIS_PASSWORD is Redis's, and must not reach another service.
      password: readRedisPassword(config.numbersPasswordFile, {}, "etcd"),
      caFile: config.numbersCaFile,
      clientCertificate,
      firstNumber: config.firstNumber,
      log,
      tlsFetch: runtime.tlsFetch,
    });
  }
  if (config.numbers !== null) {
    // Loaded only here: the Redis client costs ~170 ms to load, which the serving child
    // processes (started from the same entry point) and servers without Redis need not pay.
    const { RedisLeaseSource } = await import("./sources/redis/redis_lease_source.ts");
    return await RedisLeaseSource.open(parseRedisUrl(config.numbers), {
      password: readRedisPassword(config.numbersPasswordFile, process.env),
      firstNumber: config.firstNumber,
      caFile: config.numbersCaFile,
      log,
    });
  }
  return config.state === null
    ? new MemoryLeaseSource(Math.max(config.firstNumber, above + 1))
    : StateFileLeaseSource.open(config.state, Math.max(config.firstNumber, above + 1), runtime);
}
