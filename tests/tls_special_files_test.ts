/**
 * TLS files that are not regular files, or too large, are refused before anything is read from
 * them, whichever way they are named: `PATCH /v1/config`, `--config` at start, or the config file
 * re-read on SIGHUP. `/dev/zero` once grew the supervisor to 5.4 GB and a FIFO blocked it until
 * something wrote to it; now each is a 422 naming the field within moments, and the server keeps
 * answering.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { ConfigError } from "../server/common/config_error.ts";
import { readTlsFiles, TLS_FILE_MAX_BYTES } from "../server/tls/tls_files.ts";
import { readRegularFile, readRegularFileAsync } from "../server/host/regular_file.ts";
import { runTallyho, startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";

const SKIP_MKFIFO = skipOffCi(toolMissing("mkfifo", "coreutils"));

/** A directory with a FIFO, a file larger than allowed and a small file. */
function specialFiles() {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-tls-special-"));
  const fifo = join(dir, "fifo.pem");
  execFileSync("mkfifo", [fifo]);
  const big = join(dir, "big.pem");
  writeFileSync(big, "");
  truncateSync(big, TLS_FILE_MAX_BYTES + 1);
  return {
    dir,
    cases: [
      ["/dev/zero", "/dev/zero", /a character device, not a regular file/],
      ["a FIFO", fifo, /a FIFO \(named pipe\), not a regular file/],
      ["a directory", dir, /a directory, not a regular file/],
      ["a file over 1 MiB", big, /holds 1048577 bytes, more than the 1048576 allowed/],
    ] as [string, string, RegExp][],
    /** Opens and closes the FIFO for writing: anything blocked opening it to read gets on. */
    unblock: () => {
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // No reader: nobody is blocked.
      }
    },
  };
}

test(
  "tls files: a device, a FIFO, a directory or a file over 1 MiB is refused unread, naming the flag",
  {
    skip: SKIP_MKFIFO,
  },
  async () => {
    const files = specialFiles();
    try {
      for (const [what, path, reason] of files.cases) {
        const started = performance.now();
        assert.throws(() => readTlsFiles(path, path), (error: unknown) => {
          assert.ok(error instanceof ConfigError, what);
          assert.equal(error.field, "tls-cert", what);
          assert.match(error.message, reason, what);
          return true;
        });
        await assert.rejects(() => readRegularFileAsync(path, TLS_FILE_MAX_BYTES), reason, what);
        assert.ok(performance.now() - started < 1000, `${what}: refused at once`);
      }
      // A regular file at the limit is read whole.
      const exact = join(files.dir, "exact");
      writeFileSync(exact, new Uint8Array(1024).fill(65));
      assert.equal(readRegularFile(exact, 1024).length, 1024);
      assert.throws(() => readRegularFile(exact, 1023), /more than the 1023 allowed/);
    } finally {
      files.unblock();
      rmSync(files.dir, { recursive: true, force: true });
    }
  },
);

async function patchTls(server: TestServer, path: string): Promise<Response> {
  return await server.admin("/v1/config", {
    method: "PATCH",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ "tls-cert": path, "tls-key": path }),
    signal: AbortSignal.timeout(5000),
  });
}

test(
  `[${UNDER_TEST}] tls files: PATCH naming /dev/zero, a FIFO, a directory or a huge file is a 422 at once; the supervisor stays small and answers`,
  {
    skip: SKIP_MKFIFO,
  },
  async () => {
    const files = specialFiles();
    const config = join(files.dir, "tallyho.json");
    writeFileSync(config, "{}");
    const server = await startTallyho(["--threads", "1", "--config", config]);
    try {
      const rssBefore = server.rss();
      for (const [what, path, reason] of files.cases) {
        const response = await patchTls(server, path);
        const body = await response.json() as { error: { field?: string; message: string } };
        assert.equal(response.status, 422, `${what}: ${JSON.stringify(body)}`);
        assert.equal(body.error.field, "tls-cert", what);
        assert.match(body.error.message, reason, what);
        const live = await fetch(`${server.adminUrl}/livez`, { signal: AbortSignal.timeout(2000) });
        assert.equal(live.status, 200, `${what}: /livez after`);
        await live.body?.cancel();
      }
      // The same files through the config file and SIGHUP: not applied, and said so.
      for (const [what, path, reason] of files.cases) {
        writeFileSync(config, JSON.stringify({ "tls-cert": path, "tls-key": path }));
        const before = server.output().length;
        // process.kill: Deno's child.kill refuses a second signal (denoland/deno#36643).
        process.kill(server.pid, "SIGHUP");
        const deadline = Date.now() + 5000;
        while (!/SIGHUP: configuration not applied/.test(server.output().slice(before))) {
          assert.ok(Date.now() < deadline, `${what}: no SIGHUP line in ${server.output()}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        assert.match(server.output().slice(before), reason, what);
      }
      const live = await fetch(`${server.adminUrl}/livez`, { signal: AbortSignal.timeout(2000) });
      assert.equal(live.status, 200);
      await live.body?.cancel();
      const grown = server.rss() - rssBefore;
      assert.ok(grown < 64 * 1024 * 1024, `the supervisor grew by ${grown} bytes`);
    } finally {
      files.unblock();
      await server.stop();
      rmSync(files.dir, { recursive: true, force: true });
    }
  },
);

test(
  `[${UNDER_TEST}] tls files: --config naming /dev/zero or a FIFO exits 2 at once with one line`,
  {
    skip: SKIP_MKFIFO,
  },
  async () => {
    const files = specialFiles();
    try {
      for (const [what, path, reason] of files.cases.slice(0, 2)) {
        const config = join(files.dir, "start.json");
        writeFileSync(config, JSON.stringify({ "tls-cert": path, "tls-key": path }));
        const result = await runTallyho(["serve", "--port", "0", "--config", config], 10_000);
        assert.equal(result.code, 2, `${what}: ${result.stderr}`);
        assert.match(result.stderr.split("\n")[0]!, reason, what);
      }
      // The config file itself may not be one either.
      const result = await runTallyho(["serve", "--port", "0", "--config", "/dev/zero"], 10_000);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /Cannot read config file \/dev\/zero: it is a character device/);
    } finally {
      files.unblock();
      rmSync(files.dir, { recursive: true, force: true });
    }
  },
);
