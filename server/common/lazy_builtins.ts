/**
 * `node:net` and `node:crypto`, loaded the first time they are used rather than when a module
 * that may use them is imported.
 *
 * Why: every serving process imports the allow and deny lists, the SNI names, the TLS files and
 * the admin relay, but most never use them (the default lists are empty; TLS, SNI and the relay
 * are configured or the supervisor's). Importing the two builtins cost each serving process about
 * 1.2 MB of RSS on Bun 1.4.5 (47.8 against 50.0 MB at idle together with the stdio channel, see
 * docs/tuning.md, "Memory"): at a million connections, 64 processes pay it. Both runtimes load a
 * builtin synchronously with `process.getBuiltinModule` (Node 22.3's API; Bun 1.4.5, Deno 2.9.6),
 * so callers stay synchronous. Import only the types (`import type`) from the builtins elsewhere.
 *
 * @module
 */

import process from "node:process";

type NodeNet = typeof import("node:net");
type NodeCrypto = typeof import("node:crypto");

let net: NodeNet | undefined;
let crypto: NodeCrypto | undefined;

/** `node:net`, loaded on first use. */
export function nodeNet(): NodeNet {
  return net ??= process.getBuiltinModule("node:net") as NodeNet;
}

/** `node:crypto`, loaded on first use. */
export function nodeCrypto(): NodeCrypto {
  return crypto ??= process.getBuiltinModule("node:crypto") as NodeCrypto;
}
