/**
 * The release's arm64 binary, run end to end on this x86-64 host under qemu through binfmt_misc
 * (tests/_qemu.ts; issue 22): its version, two processes of two threads numbering an independent
 * Python client's requests (tests/fixtures/lifecycle_client.py), the admin API and the dashboard
 * it embeds, and an upgrade (SIGUSR2) to the same binary under that load with 0 failed clients and
 * 0 repeats. Runs in npm test's release stage (tests/_release.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { holdAarch64Binfmt, QEMU_ENV, QEMU_TOOLS } from "./_qemu.ts";
import { mustRun, releaseSkip, requireReleaseTools, timed, VERSION } from "./_release.ts";

const TOOLS = QEMU_TOOLS;
const CLIENT = fileURLToPath(new URL("fixtures/lifecycle_client.py", import.meta.url));
const TOKEN = "tallyho-arm64-test-token-0123456789abcdef";

/** Output so far and a way to wait for a line in it. */
function watch(
  child: ChildProcess,
): { text(): string; waitFor(re: RegExp, ms: number): Promise<RegExpExecArray> } {
  let text = "";
  child.stdout!.on("data", (chunk: Buffer) => (text += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (text += chunk.toString()));
  return {
    text: () => text,
    waitFor: async (re, ms) => {
      const deadline = Date.now() + ms;
      for (;;) {
        const match = re.exec(text);
        if (match) return match;
        if (Date.now() > deadline || child.exitCode !== null) {
          throw new Error(
            `${re} did not appear within ${ms / 1000} s (exit ${child.exitCode}):\n${text}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
  };
}

test(
  "[release] arm64 under qemu: the linux-arm64 binary says its version, serves 2 processes x 2 threads, answers the admin API and the dashboard, and upgrades under load with 0 failed clients and 0 repeats",
  {
    skip: releaseSkip(TOOLS),
    timeout: 300_000,
  },
  async () => {
    const release = requireReleaseTools(TOOLS);
    const dir = mkdtempSync(join(tmpdir(), "tallyho-arm64-"));
    const binfmt = await timed("register qemu-aarch64 (binfmt_misc)", () => holdAarch64Binfmt());
    let server: ChildProcess | null = null;
    let client: ChildProcess | null = null;
    const pids: number[] = [];
    try {
      const name = `tallyho-${VERSION}-linux-arm64`;
      mustRun("tar", ["-xzf", join(release, `${name}.tar.gz`), "-C", dir]);
      const binary = join(dir, name, "tallyho");
      const env = {
        ...process.env,
        ...QEMU_ENV,
        TALLYHO_ADMIN_TOKEN: TOKEN,
        TMPDIR: join(dir, "tmp"),
      };
      mkdirSync(env.TMPDIR, { mode: 0o700 });
      const version = await timed("arm64 --version", () => mustRun(binary, ["--version"], { env }));
      assert.match(
        version,
        new RegExp(
          `^tallyho ${
            VERSION.replaceAll(".", "\\.")
          } \\(commit [0-9a-f]{12}\\S*, built \\S+, for linux-arm64; bun `,
        ),
      );
      const stateDir = join(dir, "state");
      mkdirSync(stateDir, { mode: 0o700 });
      chmodSync(stateDir, 0o700);
      server = spawn(binary, [
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--admin",
        "127.0.0.1:0",
        "--processes",
        "2",
        "--threads",
        "2",
        "--framing",
        "line",
        "--number-by",
        "message",
        "--state",
        join(stateDir, "numbers.state"),
        "--drain-timeout",
        "2s",
      ], { env, cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
      pids.push(server.pid!);
      const log = watch(server);
      const [, port] = await timed(
        "arm64 serve: listening",
        () => log.waitFor(/listening on 127\.0\.0\.1:(\d+) with 2 processes x 2 threads/, 120_000),
      );
      const [, admin] = await log.waitFor(/admin API on (http:\/\/127\.0\.0\.1:\d+)\//, 30_000);
      const processes = [...log.text().matchAll(/process (\d) listening \(pid (\d+)\)/g)];
      assert.equal(
        new Set(processes.map((m) => m[1])).size,
        2,
        "two serving processes",
      );
      for (const [, , pid] of processes) {
        assert.match(mustRun("cat", [`/proc/${pid}/cmdline`]), /tallyho\0_child/);
      }

      client = spawn("python3", [CLIENT, "127.0.0.1", port!, "2", "5", "240", "message"], {
        stdio: ["pipe", "pipe", "inherit"],
      });
      const said: string[] = [];
      let pending = "";
      client.stdout!.on("data", (chunk: Buffer) => {
        pending += chunk.toString();
        const lines = pending.split("\n");
        pending = lines.pop()!;
        said.push(...lines);
      });
      const next = async (command: string) => {
        const before = said.length;
        client!.stdin!.write(`${command}\n`);
        const deadline = Date.now() + 30_000;
        while (said.length === before) {
          if (Date.now() > deadline) throw new Error(`the client did not answer ${command}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        return JSON.parse(said.at(-1)!);
      };
      const enough = async (count: number) => {
        const deadline = Date.now() + 60_000;
        for (;;) {
          const report = await next("report");
          if (report.replies >= count || Date.now() > deadline) return report;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      };
      while (said.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      await next("phase serve");
      const served = await timed("arm64: 100 replies", () => enough(100));
      assert.ok(served.replies >= 100, JSON.stringify(served));
      assert.equal(served.errors, 0, JSON.stringify(served));

      const headers = { authorization: `Bearer ${TOKEN}` };
      const info = await (await fetch(`${admin}/v1/info`, { headers })).json() as Record<
        string,
        unknown
      >;
      assert.equal(info.version, VERSION);
      assert.equal((info.processes as unknown[]).length, 2);
      const page = await fetch(`${admin}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i, "the dashboard is embedded");

      await next("phase upgrade");
      process.kill(server.pid!, "SIGUSR2");
      const [, newPid] = await log.waitFor(/started a new supervisor \(pid (\d+)\)/, 10_000);
      pids.push(Number(newPid));
      await timed(
        "arm64 upgrade: taken over",
        () => log.waitFor(/upgrade: took over from pid/, 120_000),
      );
      const oldExit = await new Promise<number | null>((resolve) =>
        server!.once("exit", (code) => resolve(code))
      );
      assert.equal(oldExit, 0, "the old supervisor drained and exited 0");
      const upgraded = await enough(50);
      assert.equal(
        upgraded.errors,
        0,
        `no client failed in the upgrade: ${JSON.stringify(upgraded)}`,
      );
      assert.ok(upgraded.replies >= 50, JSON.stringify(upgraded));
      const after = await (await fetch(`${admin}/v1/info`, { headers })).json() as Record<
        string,
        unknown
      >;
      assert.equal(after.pid, Number(newPid), "the new supervisor answers the admin API");

      // The client stops first: what it records is what the two trees served.
      client.stdin!.end("stop\n");
      const total = await new Promise<Record<string, unknown>>((resolve) =>
        client!.once("close", () => resolve(JSON.parse(said.at(-1)!)))
      );
      assert.equal(
        total.repeats,
        0,
        `no number twice: ${JSON.stringify(total)}\nthe server's log:\n${log.text()}`,
      );
      process.kill(Number(newPid), "SIGTERM");
      await timed("arm64: stopped", async () => {
        const deadline = Date.now() + 60_000;
        const stops = () => [...log.text().matchAll(/stopped; last number handed out/g)].length;
        while (stops() < 2 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      });
      assert.match(
        log.text(),
        /stopped; last number handed out: \d+[\s\S]*stopped; last number handed out: \d+/,
        "the old and the new supervisor each stopped cleanly",
      );
      console.log(`release arm64 client: ${said.at(-1)}`);
    } finally {
      client?.kill("SIGKILL");
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Gone already.
        }
      }
      binfmt.release();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
