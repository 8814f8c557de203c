/**
 * tallyho: a small, very fast TCP server that answers every client `Hello World<N>`, N never
 * repeated. Run it with `bun mod.ts serve` or `deno run -A --unstable-net mod.ts serve`; import
 * it to start a server from code.
 *
 * @module
 */

import process from "node:process";
import { main } from "./cli/main.ts";

export * from "./server/mod.ts";

if (import.meta.main) {
  process.exit(await main(process.argv.slice(2)));
}
