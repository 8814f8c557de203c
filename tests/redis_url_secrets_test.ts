/**
 * A malformed `--numbers` URL is never echoed beyond its host: a password typed into it, even one
 * whose `/` or `@` defeats the parse, or sent as a query or a port, never reaches an error.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultConfig, resolveConfig } from "../server/config/resolve_config.ts";
import { parseRedisUrl } from "../server/lease/sources/redis/redis_url.ts";
import { runTallyho } from "./_server.ts";

// Each holds the secret "hunter2" (or its halves) somewhere after the host, or in a user part.
const MALFORMED = [
  "redis://:hun/ter2@h:6379/k", // a '/' in the password: the authority ends early
  "redis://user:hun/ter2@h/k",
  "redis://h:6379/k?password=hunter2",
  "redis://h:6379/k#hunter2",
  "redis://h:hunter2/k", // the password where the port goes
  "redis://:hunter2@/", // no host
  "redis:///hunter2",
  "redis://:hun ter2@h/k",
  "rediss//:hunter2@h/k", // no "://"
  "http://:hunter2@h/k",
  "http://h/k?auth=hunter2",
];

test("redis url: a malformed URL's error shows nothing after the host, so no password", () => {
  for (const url of MALFORMED) {
    assert.throws(() => parseRedisUrl(url), (error: Error) => {
      assert.ok(error instanceof RangeError, `${url}: ${error}`);
      assert.doesNotMatch(error.message, /hunter2|hun\b|ter2/, `${url} -> ${error.message}`);
      return true;
    });
    assert.throws(() => resolveConfig({ numbers: url }, defaultConfig(2)), (error: Error) => {
      assert.doesNotMatch(error.message, /hunter2|hun\b|ter2/, `${url} -> ${error.message}`);
      return true;
    });
  }
  // What can be shown still is: the scheme and the host, so the operator sees which URL it was.
  assert.throws(() => parseRedisUrl("redis://h:6379/k?password=hunter2"), /"redis:\/\/h:6379…"/);
  assert.throws(() => parseRedisUrl("redis://h:hunter2/k"), /"redis:\/\/h…"/);
  assert.throws(() => parseRedisUrl("http://h/k?auth=hunter2"), /"http:\/\/h…"/);
});

test("redis url: tallyho serve with a malformed --numbers prints one line without the password", async () => {
  const result = await runTallyho(["serve", "--numbers", "redis://:hun/ter2@127.0.0.1:1/k"]);
  assert.equal(result.code, 2, result.stderr);
  const all = result.stdout + result.stderr;
  assert.doesNotMatch(all, /hunter2|hun\b|ter2/, all);
  assert.match(all, /'numbers' must be redis:\/\/HOST:PORT\/DB\?key=KEY/);
});
