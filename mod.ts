/**
 * tallyho: a small, very fast TCP server that answers every client `Hello World<N>`, N never
 * repeated. Run it with `bun mod.ts serve` or `deno run -A --unstable-net mod.ts serve`; import
 * it to start a server from code.
 *
 * @module
 */

import process from "node:process";

export * from "./server/mod.ts";

if (import.meta.main) {
  // Imported only when run, and then only what the command needs: a serving child does not load
  // the command line (cli/run_program.ts).
  const { runProgram } = await import("./cli/run_program.ts");
  process.exit(await runProgram(process.argv.slice(2)));
}
