/**
 * The state file under faults, end to end: a file size limit that cuts its writes short, a state
 * directory that turns read-only under a running server, and `kill -9` of the lock's holder.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { readStateFile, writeStateFile } from "../server/lease/sources/state_file/state_file.ts";
import { LineClient, replyNumber } from "./_client.ts";
import { isAlive, startTallyho, UNDER_TEST } from "./_server.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";
import { sleep, waitUntil } from "./_wait.ts";

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "tallyho-state-faults-"));
}

function has(command: string, ...args: string[]): boolean {
  return spawnSync(command, args, { stdio: "ignore" }).status === 0;
}

/** Sends one line and returns the reply, or `null` when the server closed without one. */
async function ask(port: number): Promise<number | null> {
  const client = await LineClient.connect(port);
  try {
    return replyNumber(await client.request("hi"));
  } catch {
    return null;
  } finally {
    client.close();
  }
}

test(
  `[${UNDER_TEST}] cli: a state file write cut short by a file size limit fails the lease; the good file stays`,
  {
    skip: skipOffCi(toolMissing("prlimit", "util-linux")),
  },
  async () => {
    const dir = tempDir();
    try {
      const path = join(dir, "numbers.state");
      writeStateFile(path, 1000); // 70 bytes: every rewrite passes the 40-byte limit
      let good = "";
      const server = await startTallyho(["--threads", "1", "--admin", "off", "--state", path]);
      let reply: number | null;
      try {
        // On the running supervisor only: Deno writes its own caches past 40 bytes at start.
        const limit = spawnSync("prlimit", ["--pid", String(server.pid), "--fsize=40:40"], {
          encoding: "utf8",
        });
        assert.equal(limit.status, 0, limit.stderr);
        good = readFileSync(path, "utf8"); // From here on, every write fails.
        // The serving process leased its first blocks before the limit: a restarted one must lease.
        process.kill(server.childPids().get(0)!, "SIGKILL");
        await server.waitFor(/process 0 listening[^]*process 0 listening/);
        await server.waitFor(/cannot lease \d+ numbers to process 0: Cannot record \d+ in state/);
        reply = await ask(server.port);
      } finally {
        assert.equal(await server.stop(), 0, server.output());
      }
      assert.equal(reply, null, "no number is handed out without its lease recorded");
      assert.equal(readFileSync(path, "utf8"), good, "the good state file stays");
      assert.ok(readStateFile(path)! > 1000, "the file is intact and above the first lease");
      assert.match(
        server.output(),
        /(EFBIG|File too large).*the file still holds the previous mark/,
      );
      assert.deepEqual(readdirSync(dir), ["numbers.state"], "no temporary or lock file is left");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

const AS_ROOT = process.getuid?.() === 0;
/** Why no private mount namespace can be made here (it takes root and unshare), or null. */
const noUnshare = !AS_ROOT
  ? "a private mount namespace needs root (run as root)"
  : has("unshare", "-m", "--propagation", "private", "true")
  ? null
  : "unshare -m cannot make a private mount namespace here (apt-get install util-linux)";

test(
  `[${UNDER_TEST}] cli: SIGTERM with the state directory read-only exits 0 and says what it could not record`,
  {
    skip: skipOffCi(noUnshare),
  },
  async () => {
    const dir = tempDir();
    try {
      const path = join(dir, "numbers.state");
      // A private mount namespace where the directory is a bind mount of itself, so it can be
      // remounted read-only there (chmod does not stop root) without touching anyone else's view.
      const server = await startTallyho(
        ["--threads", "1", "--admin", "off", "--state", path],
        {
          wrap: [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount --bind "$0" "$0" && exec "$@"',
            dir,
          ],
        },
      );
      let code: number | string;
      try {
        assert.equal(await ask(server.port), 1);
        const remountReadOnly = () =>
          spawnSync("nsenter", [
            "-t",
            String(server.pid),
            "-m",
            "--",
            "mount",
            "-o",
            "remount,bind,ro",
            dir,
          ], { encoding: "utf8" });
        // The kernel refuses a read-only remount (EBUSY, "mount point is busy") while a file in it
        // is open for writing: a lease ahead may be writing the state file at that moment (seen
        // once in CI). Try again for up to 5 s.
        let remount = remountReadOnly();
        for (let i = 0; i < 50 && remount.status !== 0 && /busy/.test(remount.stderr); i++) {
          await sleep(100);
          remount = remountReadOnly();
        }
        assert.equal(remount.status, 0, remount.stderr);
      } finally {
        code = await server.stop();
      }
      const lines = server.output().trim().split("\n");
      assert.equal(code, 0, server.output());
      assert.match(
        lines.at(-1)!,
        new RegExp(
          `^\\S+ info tallyho: stopped; last number handed out: 1;.*; not recorded: Could not remove the ` +
            `lock file ${path}\\.lock \\(EROFS\\); its kernel lock is released`,
        ),
      );
      // Outside the namespace the directory was writable all along: the lock file is still there,
      // and it blocks nothing.
      assert.ok(existsSync(`${path}.lock`));
      const next = await startTallyho(["--threads", "1", "--admin", "off", "--state", path]);
      try {
        assert.ok((await ask(next.port))! > 1, "the next start continues above");
      } finally {
        assert.equal(await next.stop(), 0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(`[${UNDER_TEST}] cli: a kill -9'd holder leaves no lock behind; its children never held the lock file`, async () => {
  const dir = tempDir();
  try {
    const path = join(dir, "numbers.state");
    const args = ["--processes", "2", "--threads", "1", "--admin", "off", "--state", path];
    const first = await startTallyho(args);
    const children = [...first.childPids().values()];
    assert.equal(children.length, 2, first.output());
    const seen = (await ask(first.port))!;
    for (const pid of children) {
      const open = readdirSync(`/proc/${pid}/fd`).map((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return "";
        }
      });
      assert.ok(!open.some((file) => file.startsWith(path)), `child ${pid} holds ${open}`);
    }
    await first.stop("SIGKILL");
    for (const pid of children) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Gone with its parent.
      }
    }
    await waitUntil(() => !children.some(isAlive), { what: "the killed children gone" });
    assert.equal(readFileSync(`${path}.lock`, "utf8"), `${first.pid}\n`, "left behind");
    const second = await startTallyho(args);
    try {
      assert.ok((await ask(second.port))! > seen, "the fresh start continues above");
    } finally {
      assert.equal(await second.stop(), 0);
    }
    assert.ok(!existsSync(`${path}.lock`), "a clean stop removes the lock file");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
