// A real server whose wall clock is stepped forward and back while it runs, by libfaketime
// (LD_PRELOAD; the monotonic clock left alone). Skipped where libfaketime is not installed
// (Debian/Ubuntu: apt-get install libfaketime).
import { INSTALL_TOOLS, skipOffCi } from "./_tools.ts";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { LineClient, replyNumber } from "./_client.ts";
import { startTallyho, UNDER_TEST } from "./_server.ts";
import { sleep } from "./_wait.ts";

// TALLYHO_LIBFAKETIME names the one to use instead (tests/missing_tools_test.ts names none).
const LIBFAKETIME = (process.env.TALLYHO_LIBFAKETIME === undefined
  ? [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib64/faketime/libfaketimeMT.so.1",
    "/usr/local/lib/faketime/libfaketimeMT.so.1",
  ]
  : [process.env.TALLYHO_LIBFAKETIME]).find((path) => existsSync(path));

// libfaketime rereads the offset file at most once a second (FAKETIME_CACHE_DURATION).
const SEEN_MS = 1600;

test(
  `[${UNDER_TEST}] clock jump end to end: a stepped wall clock closes no one early, locks no one out, disables no timeout`,
  {
    skip: skipOffCi(
      LIBFAKETIME === undefined
        ? `libfaketime is not installed (apt-get install libfaketime, or ${INSTALL_TOOLS})`
        : null,
    ),
  },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "tallyho-faketime-"));
    const offsetFile = join(dir, "offset");
    writeFileSync(offsetFile, "+0\n");
    const server = await startTallyho([
      "--processes",
      "1",
      "--threads",
      "2",
      "--idle-timeout",
      "3s",
      "--first-message-timeout",
      "3s",
      "--connection-rate",
      "2",
      "--connection-burst",
      "1",
      "--state",
      join(dir, "state"),
    ], {
      env: {
        LD_PRELOAD: LIBFAKETIME!,
        FAKETIME_TIMESTAMP_FILE: offsetFile,
        FAKETIME_CACHE_DURATION: "1",
        FAKETIME_DONT_FAKE_MONOTONIC: "1",
      },
    });
    const clients: LineClient[] = [];
    try {
      const seen: Record<string, unknown> = {};
      const a = await LineClient.connect(server.port);
      clients.push(a);
      replyNumber(await a.request("hi\n"));

      // Forward an hour: a connection active a moment ago is not idle.
      writeFileSync(offsetFile, "+1h\n");
      await sleep(SEEN_MS);
      seen.activeKeptAfterForwardStep = await a.request("hi\n", 2000).then(() => true, () => false);
      const c = await LineClient.connect(server.port);
      clients.push(c);
      replyNumber(await c.request("hi\n"));
      const cLastActive = performance.now();

      // Back two hours: the address's bucket refills with time that passes (2 per second)...
      writeFileSync(offsetFile, "-1h\n");
      await sleep(SEEN_MS);
      const b = await LineClient.connect(server.port);
      clients.push(b);
      seen.admittedAfterBackwardStep = await b.request("hi\n", 2000).then(() => true, () => false);

      // ...and a silent connection is still closed at its idle timeout (3 s), not two hours later.
      const closedAfter = await Promise.race([
        c.closedPromise.then(() => performance.now() - cLastActive),
        sleep(6000).then(() => Infinity),
      ]);
      seen.idleClosedAtItsTimeout = closedAfter >= 2900 && closedAfter < 5000 ? true : closedAfter;

      assert.deepEqual(seen, {
        activeKeptAfterForwardStep: true,
        admittedAfterBackwardStep: true,
        idleClosedAtItsTimeout: true,
      }, server.output());
    } finally {
      for (const client of clients) client.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
