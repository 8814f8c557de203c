/**
 * Run as its own process under a low open-file limit by state_file_test: opens a state file,
 * then takes every descriptor left (as a flood of connections would), and tries a lease through
 * the source (which holds a reserve) and a bare write (which does not). Prints one JSON line.
 */
import { openSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import {
  StateFileLeaseSource,
  writeStateFile,
} from "../server/lease/sources/state_file/state_file.ts";
import { runtime } from "../server/adapters/mod.ts";

const dir = process.argv[2]!;
const source = StateFileLeaseSource.open(join(dir, "state"), 1, runtime);
let taken = 0;
for (;;) {
  try {
    openSync("/dev/null", "r");
    taken++;
  } catch {
    break;
  }
}
const result: Record<string, unknown> = { taken };
for (let i = 0; i < 3; i++) {
  try {
    result[`lease${i}`] = await source.lease(4096);
  } catch (error) {
    result[`lease${i}`] = (error as { code?: string }).code ?? String(error);
  }
}
try {
  writeStateFile(join(dir, "bare"), 1);
  result.bare = "written";
} catch (error) {
  result.bare = (error as { code?: string }).code ?? String(error);
}
console.log(JSON.stringify(result));
process.exit(0);
