/**
 * The hold workload's options: how many client processes a count needs under the open-file
 * limit, the address lists it spreads over, and the errors that name the flag.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseAddressList } from "../load/address_list.ts";
import { holdProcesses, resolveHoldOptions } from "../load/hold_options.ts";
import { ConfigError } from "../server/common/config_error.ts";

test("hold options unit: a million at 20,000 files a process takes 52 client processes of 19,488", () => {
  const config = resolveHoldOptions({ connections: 1_000_000 }, 20_000);
  assert.equal(config.perProcess, 19_488);
  assert.equal(holdProcesses(config.connections, config.perProcess), 52);
  assert.equal(holdProcesses(60_000, 15_000), 4);
  assert.equal(holdProcesses(1, 15_000), 1);
  assert.equal(config.inFlight, 500, "under every runtime's listen backlog");
  assert.deepEqual(config.hosts, ["127.0.0.1"]);
});

test("hold options unit: more connections a process than its open files allow is refused by name", () => {
  assert.throws(
    () => resolveHoldOptions({ perProcess: 19_990 }, 20_000),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message ===
        "'per-process' must leave room under the open-file limit 20000: got 19990; use at most 19488 or raise 'ulimit -n'",
  );
  assert.throws(
    () => resolveHoldOptions({ rate: -1 }, 20_000),
    /^ConfigError: 'rate' must be an integer from 0 to 10000000: got -1$/,
  );
});

test("hold options unit: address lists expand blocks without network and broadcast, in order, once each", () => {
  assert.deepEqual(parseAddressList("host", "127.0.0.0/30"), ["127.0.0.1", "127.0.0.2"]);
  assert.deepEqual(parseAddressList("host", "127.0.0.5/32,127.0.0.1,127.0.0.5"), [
    "127.0.0.5",
    "127.0.0.1",
  ]);
  assert.equal(parseAddressList("host", "127.0.0.0/26").length, 62);
  assert.equal(parseAddressList("source", "127.0.1.0/24").length, 254);
  assert.deepEqual(parseAddressList("source", "::1"), ["::1"]);
  assert.throws(() => parseAddressList("host", "127.0.0.0/8"), /holds 16777216 addresses/);
  assert.throws(() => parseAddressList("source", "localhost"), /got "localhost"/);
});
