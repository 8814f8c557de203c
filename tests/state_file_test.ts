/**
 * The durable state file: its format, its checks, its lock, and the one-line errors an operator
 * sees for each problem.
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import process from "node:process";
import { join } from "node:path";
import { test } from "node:test";
import {
  readStateFile,
  StateFileError,
  StateFileLeaseSource,
  writeStateFile,
} from "../server/lease/sources/state_file/state_file.ts";
import { lockStateFile } from "../server/lease/sources/state_file/state_lock.ts";
import { LineClient, replyNumber } from "./_client.ts";
import { runTallyho, startTallyho, UNDER_TEST } from "./_server.ts";
import { runtime } from "../server/adapters/mod.ts";

const AS_ROOT = process.getuid?.() === 0;

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "tallyho-state-test-"));
}

test("state file round-trips its mark and a missing file reads as none", () => {
  const dir = tempDir();
  try {
    const path = join(dir, "s");
    assert.equal(readStateFile(path), null);
    writeStateFile(path, 2 ** 53 - 1);
    assert.equal(readStateFile(path), 2 ** 53 - 1);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("state file leases persist the new mark before returning, once per lease", async () => {
  const dir = tempDir();
  try {
    const path = join(dir, "s");
    const source = StateFileLeaseSource.open(path, 100, runtime);
    assert.equal(readStateFile(path), 100, "created at the first number");
    assert.equal(await source.lease(4096), 100);
    assert.equal(readStateFile(path), 4196);
    assert.equal(await source.lease(10), 4196);
    assert.equal(readStateFile(path), 4206);
    assert.equal(source.writes, 2);
    await source.close();
    const reopened = StateFileLeaseSource.open(path, 1, runtime);
    assert.equal(await reopened.lease(1), 4206, "a restart resumes above the mark");
    await reopened.close();
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("state file refuses corrupt, truncated, edited and foreign content, naming the file", () => {
  const dir = tempDir();
  try {
    const path = join(dir, "s");
    writeStateFile(path, 12345);
    const good = readFileSync(path, "utf8");
    const cases: Array<[string, RegExp]> = [
      [good.slice(0, good.length - 10), /corrupt or truncated/],
      ["\u0000\u0001garbage", /corrupt or truncated/],
      [good.replace("12345", "12"), /checksum does not match/],
      [JSON.stringify({ format: "other", version: 1, next: 5 }), /is not a tallyho-state v1 file/],
      ["", /corrupt or truncated/],
    ];
    for (const [content, expected] of cases) {
      writeFileSync(path, content);
      assert.throws(() => readStateFile(path), (error: Error) => {
        assert.ok(error instanceof StateFileError);
        assert.match(error.message, expected);
        assert.ok(error.message.includes(path), "names the file");
        return true;
      });
    }
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("state file lock refuses a second holder and takes over a dead one's", () => {
  const dir = tempDir();
  try {
    const path = join(dir, "s");
    const lock = lockStateFile(path, runtime.tryLockFile);
    assert.throws(
      () => lockStateFile(path, runtime.tryLockFile),
      /is in use by another tallyho \(pid \d+/,
    );
    lock.release();
    writeFileSync(`${path}.lock`, "999999999\n"); // a pid that cannot exist
    lockStateFile(path, runtime.tryLockFile).release();
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("state file write never follows a symlink planted at a temporary name, and writes 0600", () => {
  const dir = tempDir();
  try {
    const path = join(dir, "s");
    const victim = join(dir, "victim");
    writeFileSync(victim, "precious\n");
    chmodSync(victim, 0o644);
    // The name the temporary file used to have: FILE.tmp-<pid>.
    symlinkSync(victim, `${path}.tmp-${process.pid}`);
    writeStateFile(path, 42);
    assert.equal(readFileSync(victim, "utf8"), "precious\n", "the symlink's target is untouched");
    assert.ok(lstatSync(path).isFile(), "the state file is a plain file, not the symlink");
    assert.equal(readStateFile(path), 42);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir).sort(), ["s", "s.tmp-" + process.pid, "victim"]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("state file lock refuses a symlink planted at the lock file's name", () => {
  const dir = tempDir();
  try {
    const path = join(dir, "s");
    const victim = join(dir, "victim");
    writeFileSync(victim, "precious\n");
    symlinkSync(victim, `${path}.lock`);
    assert.throws(
      () => lockStateFile(path, runtime.tryLockFile),
      /Cannot lock state file .*s\.lock: too many symbolic links \(ELOOP\)/,
    );
    assert.equal(readFileSync(victim, "utf8"), "precious\n");
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("state file in a directory other users can write is refused, naming the directory", () => {
  const dir = tempDir();
  try {
    const path = join(dir, "s");
    for (const mode of [0o777, 0o1777, 0o770, 0o702]) {
      chmodSync(dir, mode);
      assert.throws(
        () => StateFileLeaseSource.open(path, 1, runtime),
        (error: Error) => {
          assert.ok(error instanceof StateFileError);
          assert.match(
            error.message,
            new RegExp(
              `its directory ${dir} can be written by other users \\(mode 0?${
                mode.toString(8)
              }\\).*${mode & 0o1000 ? `mkdir -m 0700 ${dir}/tallyho$` : `chmod go-w ${dir}$`}`,
            ),
          );
          return true;
        },
      );
    }
    assert.deepEqual(readdirSync(dir), [], "nothing was created there");
    chmodSync(dir, 0o755);
    const source = StateFileLeaseSource.open(path, 1, runtime);
    return source.close();
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("state file in a directory owned by another user is refused", { skip: !AS_ROOT }, () => {
  const dir = tempDir();
  try {
    chownSync(dir, 65534, 65534);
    assert.throws(
      () => StateFileLeaseSource.open(join(dir, "s"), 1, runtime),
      /its directory .* belongs to another user \(uid 65534\)/,
    );
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("state file write that stops short fails, leaves the previous mark and no temporary file", () => {
  const dir = tempDir();
  try {
    const path = join(dir, "s");
    writeStateFile(path, 1000);
    const good = readFileSync(path, "utf8");
    const faults: Array<[string, Parameters<typeof writeStateFile>[2], RegExp]> = [
      // What a file size limit does: a short write, then EFBIG.
      ["short, then EFBIG", {
        writeChunk: (fd, bytes, offset, length, position) => {
          if (offset > 0) throw Object.assign(new Error("file too large"), { code: "EFBIG" });
          return writeSync(fd, bytes, offset, Math.min(length, 20), position);
        },
      }, /could not write \d+ bytes \(20 written\): over the file size limit \(EFBIG\)/],
      ["nothing written", { writeChunk: () => 0 }, /the write stopped after 0 bytes/],
      // A write that claims more than it wrote is caught by reading the file back.
      ["claims all, writes half", {
        writeChunk: (fd, bytes, offset, length, position) => {
          writeSync(fd, bytes, offset, length >> 1, position);
          return length;
        },
      }, /could not read back what was written: read back \d+ bytes that differ/],
    ];
    for (const [what, options, expected] of faults) {
      assert.throws(() => writeStateFile(path, 5000, options), (error: Error) => {
        assert.ok(error instanceof StateFileError, what);
        assert.match(error.message, expected, what);
        assert.match(error.message, /Cannot record 5000 in state file .*previous mark/, what);
        return true;
      });
      assert.equal(readFileSync(path, "utf8"), good, `${what}: the good file stays`);
      assert.deepEqual(readdirSync(dir), ["s"], `${what}: no temporary file is left`);
    }
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("state file lease fails once its lock file was removed under it", async () => {
  const dir = tempDir();
  try {
    const path = join(dir, "s");
    const source = StateFileLeaseSource.open(path, 1, runtime);
    assert.equal(await source.lease(10), 1);
    unlinkSync(`${path}.lock`); // by hand: another server may take the file now
    await assert.rejects(source.lease(10), /Lock file .*s\.lock was removed or replaced/);
    assert.equal(source.status().leaseErrors, 1);
    const second = StateFileLeaseSource.open(path, 1, runtime);
    assert.equal(await second.lease(1), 21, "the second starts above every recorded lease");
    await second.close();
    await source.close();
  } finally {
    rmSync(dir, { recursive: true });
  }
});

const badStates: Array<[string, (path: string) => void, RegExp]> = [
  ["corrupt", (p) => writeFileSync(p, "not json at all"), /is corrupt or truncated/],
  ["truncated", (p) => {
    writeStateFile(p, 777);
    writeFileSync(p, readFileSync(p, "utf8").slice(0, 20));
  }, /is corrupt or truncated/],
  [
    "unreadable (a directory)",
    (p) => mkdirSync(p),
    /Cannot read state file .*: it is a directory \(EISDIR\)$/,
  ],
];

for (const [what, make, expected] of badStates) {
  test(`[${UNDER_TEST}] cli: a ${what} state file stops the server with one line and exit 1`, async () => {
    const dir = tempDir();
    try {
      const path = join(dir, "numbers.state");
      make(path);
      const { code, stderr, stdout } = await runTallyho(["--port", "0", "--state", path]);
      assert.equal(code, 1, `exit code; stderr: ${stderr}`);
      const lines = stderr.trim().split("\n");
      assert.equal(lines.length, 1, `one line:\n${stderr}`);
      assert.match(lines[0]!, expected);
      assert.ok(lines[0]!.includes(path), "names the file");
      assert.doesNotMatch(stdout, /listening/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test(`[${UNDER_TEST}] cli: a second server on a locked state file refuses with one line`, async () => {
  const dir = tempDir();
  const path = join(dir, "numbers.state");
  const first = await startTallyho(["--threads", "1", "--state", path]);
  try {
    const { code, stderr } = await runTallyho(["--port", "0", "--state", path]);
    assert.equal(code, 1);
    assert.match(
      stderr.trim(),
      new RegExp(`^tallyho: State file ${path} is in use by another tallyho \\(pid ${first.pid},`),
    );
  } finally {
    await first.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`[${UNDER_TEST}] cli: without --state the start says numbers restart; with it, numbers continue`, async () => {
  const plain = await startTallyho(["--threads", "1"]);
  await plain.stop();
  assert.match(plain.output(), /numbers are kept in memory: they restart from 1 on the next start/);
  const dir = tempDir();
  try {
    const path = join(dir, "numbers.state");
    const seen: number[] = [];
    for (let run = 0; run < 2; run++) {
      const server = await startTallyho(["--threads", "1", "--state", path]);
      const client = await LineClient.connect(server.port);
      seen.push(replyNumber(await client.request("hi")));
      client.close();
      assert.equal(await server.stop(), 0);
    }
    assert.equal(seen[0], 1);
    assert.ok(seen[1]! > seen[0]!, `second run continued above the first: ${seen}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("state file leases still write with every other descriptor taken (the reserve), 3 in a row", () => {
  const dir = tempDir();
  try {
    const runtime = "Bun" in globalThis ? [] : ["run", "-A"];
    const script = join(import.meta.dirname!, "_fd_exhaust.ts");
    const run = spawnSync(
      "prlimit",
      ["--nofile=128", process.execPath, ...runtime, script, dir],
      { encoding: "utf8", timeout: 30_000 },
    );
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout.trim().split("\n").at(-1)!);
    assert.ok(result.taken > 0, "the script took the descriptors left");
    assert.match(result.bare, /EMFILE/, "without the reserve the write fails: the fault is real");
    assert.deepEqual([result.lease0, result.lease1, result.lease2], [1, 4097, 8193]);
    assert.equal(readStateFile(join(dir, "state")), 12289, "the mark is durable");
  } finally {
    rmSync(dir, { recursive: true });
  }
});
