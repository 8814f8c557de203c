/**
 * The admin token: where it is read from, how a generated one is kept, and the bind rule.
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { ConfigError } from "../server/common/config_error.ts";
import {
  assertAdminBindAllowed,
  defaultTokenPath,
  isLoopback,
  MIN_TOKEN_LENGTH,
  resolveAdminToken,
  TOKEN_ENV,
} from "../admin/token.ts";
import { runTallyho, startTallyho, UNDER_TEST } from "./_server.ts";

const POSIX = process.platform !== "win32";
const TOKEN_32 = "0123456789abcdef0123456789abcdef";

function scratch(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-token-test-"));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

test("token: a generated one is 32 random bytes in hex, mode 0600 in a 0700 directory", {
  skip: !POSIX,
}, () => {
  using tmp = scratch();
  const path = join(tmp.dir, "run", "tallyho", "admin-token");
  const token = resolveAdminToken({ env: {}, generatedPath: path });
  assert.equal(token.source, "generated");
  assert.equal(token.path, path);
  assert.equal(token.created, true);
  assert.match(token.token, /^[0-9a-f]{64}$/);
  assert.equal(readFileSync(path, "utf8"), token.token + "\n");
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(join(tmp.dir, "run", "tallyho")).mode & 0o777, 0o700);
  // Reused by the next start; nothing else left in the directory.
  const again = resolveAdminToken({ env: {}, generatedPath: path });
  assert.equal(again.token, token.token);
  assert.equal(again.created, false);
  // Another directory gets another token.
  const other = resolveAdminToken({ env: {}, generatedPath: join(tmp.dir, "other", "t") });
  assert.notEqual(other.token, token.token);
});

test("token: a generated file that others could read, or that is not a token, is replaced", {
  skip: !POSIX,
}, () => {
  using tmp = scratch();
  const path = join(tmp.dir, "run", "admin-token");
  const first = resolveAdminToken({ env: {}, generatedPath: path });
  chmodSync(path, 0o644);
  const second = resolveAdminToken({ env: {}, generatedPath: path });
  assert.equal(second.created, true);
  assert.notEqual(second.token, first.token);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  writeFileSync(path, "not a token\n", { mode: 0o600 });
  const third = resolveAdminToken({ env: {}, generatedPath: path });
  assert.equal(third.created, true);
  assert.match(readFileSync(path, "utf8"), /^[0-9a-f]{64}\n$/);
});

test("token: a directory that is a symbolic link, or open to others, is tightened or refused", {
  skip: !POSIX,
}, () => {
  using tmp = scratch();
  const real = join(tmp.dir, "real");
  mkdirSync(real, { mode: 0o700 });
  const link = join(tmp.dir, "link");
  symlinkSync(real, link);
  assert.throws(() => resolveAdminToken({ env: {}, generatedPath: join(link, "admin-token") }), {
    name: "ConfigError",
    message: `Cannot keep the admin token in '${link}': it is not a directory owned by this user`,
  });
  const open = join(tmp.dir, "open");
  mkdirSync(open);
  chmodSync(open, 0o777);
  resolveAdminToken({ env: {}, generatedPath: join(open, "admin-token") });
  assert.equal(statSync(open).mode & 0o777, 0o700);
});

test("token: --admin-token-file is read and trimmed, and wins over the environment", () => {
  using tmp = scratch();
  const file = join(tmp.dir, "secret");
  writeFileSync(file, "  s3cret-from-file-s3cret-from-file\n", { mode: 0o600 });
  const token = resolveAdminToken({ tokenFile: file, env: { [TOKEN_ENV]: TOKEN_32 } });
  assert.deepEqual(token, {
    token: "s3cret-from-file-s3cret-from-file",
    source: "file",
    path: file,
    created: false,
  });
});

test("token: TALLYHO_ADMIN_TOKEN is honoured when no file is given, and nothing is written", () => {
  using tmp = scratch();
  const generatedPath = join(tmp.dir, "admin-token");
  const token = resolveAdminToken({
    env: { [TOKEN_ENV]: "from-env-from-env-from-env-from-env\n" },
    generatedPath,
  });
  assert.deepEqual(token, {
    token: "from-env-from-env-from-env-from-env",
    source: "env",
    created: false,
  });
  assert.throws(() => statSync(generatedPath), { code: "ENOENT" });
});

test("token: a missing file, an empty token or one with spaces is one error that never shows it", () => {
  using tmp = scratch();
  const missing = join(tmp.dir, "nope");
  assert.throws(() => resolveAdminToken({ tokenFile: missing }), {
    name: "ConfigError",
    message: `Cannot read 'admin-token-file' '${missing}': no such file or directory (ENOENT)`,
  });
  const empty = join(tmp.dir, "empty");
  writeFileSync(empty, "\n");
  assert.throws(() => resolveAdminToken({ tokenFile: empty }), {
    name: "ConfigError",
    message: `The admin token in '${empty}' is empty`,
  });
  const spaced = join(tmp.dir, "spaced");
  writeFileSync(spaced, "top secret words");
  assert.throws(() => resolveAdminToken({ tokenFile: spaced }), (error: Error) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /must be visible ASCII without spaces/);
    assert.doesNotMatch(error.message, /secret/);
    return true;
  });
  assert.throws(() => resolveAdminToken({ env: { [TOKEN_ENV]: "" } }), {
    message: `The admin token in ${TOKEN_ENV} is empty`,
  });
});

test("token: the default path is under XDG_RUNTIME_DIR, else XDG_STATE_HOME or ~/.local/state, never a shared temporary directory", () => {
  assert.equal(
    defaultTokenPath({ XDG_RUNTIME_DIR: "/run/user/1000" }),
    "/run/user/1000/tallyho/admin-token",
  );
  assert.equal(
    defaultTokenPath({ XDG_STATE_HOME: "/home/op/state", HOME: "/home/op" }),
    "/home/op/state/tallyho/admin-token",
  );
  assert.equal(
    defaultTokenPath({ HOME: "/home/op" }),
    "/home/op/.local/state/tallyho/admin-token",
  );
  assert.ok(!defaultTokenPath({}).startsWith(tmpdir() + "/tallyho-"), defaultTokenPath({}));
});

test(
  "token: a generated one is refused, naming what to set, where others may write the directory it is made in",
  {
    skip: !POSIX,
  },
  () => {
    using tmp = scratch();
    for (const mode of [0o1777, 0o777, 0o775]) {
      const shared = join(tmp.dir, `shared-${mode.toString(8)}`);
      mkdirSync(shared);
      chmodSync(shared, mode);
      assert.throws(
        () => resolveAdminToken({ env: {}, generatedPath: join(shared, "tallyho", "admin-token") }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.equal(error.field, "admin-token-file");
          assert.equal(
            error.message,
            `Cannot keep private files in the admin token's parent directory '${shared}': it ` +
              `can be written by other users (mode 0${mode.toString(8)}), so another user could ` +
              `replace them; set XDG_RUNTIME_DIR or XDG_STATE_HOME to a directory only this user ` +
              `can write, or give --admin-token-file or TALLYHO_ADMIN_TOKEN`,
          );
          return true;
        },
      );
      assert.equal(existsSync(join(shared, "tallyho")), false, "nothing was made there");
    }
    // Directories still missing are made below the first one that exists, if that one is safe.
    const deep = join(tmp.dir, "home", ".local", "state", "tallyho", "admin-token");
    assert.equal(resolveAdminToken({ env: {}, generatedPath: deep }).created, true);
  },
);

test("token: a non-loopback admin bind without a configured token is refused in one line", () => {
  for (const host of ["0.0.0.0", "::", "10.0.0.5", "admin.example"]) {
    assert.throws(() => assertAdminBindAllowed(host, { env: {} }), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.ok(error.message.startsWith(`Cannot serve the admin API on ${host} without`));
      assert.match(error.message, /--admin-token-file or set TALLYHO_ADMIN_TOKEN/);
      assert.ok(!error.message.includes("\n"));
      return true;
    }, host);
    assertAdminBindAllowed(host, { env: { [TOKEN_ENV]: "t" } });
    assertAdminBindAllowed(host, { env: {}, tokenFile: "/some/file" });
  }
  for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"]) {
    assertAdminBindAllowed(host, { env: {} });
  }
});

test("token: loopback means localhost, 127.0.0.0/8 and ::1, nothing else", () => {
  for (
    const host of ["localhost", "127.0.0.1", "127.255.0.9", "::1", "[::1]", "::ffff:127.0.0.1"]
  ) {
    assert.equal(isLoopback(host), true, host);
  }
  for (
    const host of ["0.0.0.0", "::", "128.0.0.1", "127.0.0.1.evil.example", "localhost.evil", ""]
  ) {
    assert.equal(isLoopback(host), false, host);
  }
});

test("token: a configured token shorter than 32 characters is refused in one line that states the minimum", () => {
  using tmp = scratch();
  const short = "only-20-characters!!";
  assert.throws(() => resolveAdminToken({ env: { [TOKEN_ENV]: short } }), {
    name: "ConfigError",
    message: `The admin token in ${TOKEN_ENV} is too short: it has 20 characters, and at least ` +
      `${MIN_TOKEN_LENGTH} are needed (such as 64 hex digits from: openssl rand -hex 32)`,
  });
  const file = join(tmp.dir, "short");
  writeFileSync(file, short + "\n", { mode: 0o600 });
  assert.throws(() => resolveAdminToken({ tokenFile: file }), (error: Error) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, new RegExp(`^The admin token in '${file}' is too short: .*32`));
    assert.doesNotMatch(error.message, /only-20/);
    assert.equal(error.message.split("\n").length, 1);
    return true;
  });
  assert.equal(MIN_TOKEN_LENGTH, 32);
  const exact = "x".repeat(MIN_TOKEN_LENGTH);
  assert.equal(resolveAdminToken({ env: { [TOKEN_ENV]: exact } }).token, exact);
});

test("token: a token file other users can read is used with a warning that says how to close it", {
  skip: !POSIX,
}, () => {
  using tmp = scratch();
  const file = join(tmp.dir, "token");
  writeFileSync(file, TOKEN_32, { mode: 0o600 });
  chmodSync(file, 0o600);
  assert.equal(resolveAdminToken({ tokenFile: file }).warning, undefined, "0600: no warning");
  for (const mode of [0o644, 0o640, 0o604, 0o444]) {
    chmodSync(file, mode);
    const token = resolveAdminToken({ tokenFile: file });
    assert.equal(token.token, TOKEN_32, "still used");
    assert.equal(
      token.warning,
      `the admin token file '${file}' can be read by other users (mode 0${
        mode.toString(8)
      }): run chmod 600 '${file}'`,
    );
  }
});

test(
  `[${UNDER_TEST}] tallyho serve: a short --admin-token-file stops the start with one error line; a readable one warns`,
  {
    skip: !POSIX,
  },
  async () => {
    using tmp = scratch();
    const short = join(tmp.dir, "short");
    writeFileSync(short, "tooshort\n", { mode: 0o600 });
    const refused = await runTallyho(["serve", "--port", "0", "--admin-token-file", short]);
    assert.equal(refused.code, 2, refused.stdout + refused.stderr);
    // One line for the error, then the usage hint every command-line mistake ends with.
    const lines = refused.stderr.trim().split("\n");
    assert.equal(lines.length, 2, refused.stderr);
    assert.match(lines[0]!, /too short: it has 8 characters, and at least 32 are needed/);
    assert.doesNotMatch(refused.stderr + refused.stdout, /tooshort/);

    const open = join(tmp.dir, "open");
    writeFileSync(open, TOKEN_32);
    chmodSync(open, 0o644);
    const server = await startTallyho(["--admin-token-file", open]);
    try {
      await server.waitFor(/warning: the admin token file '.*open' can be read by other users/);
    } finally {
      await server.stop("SIGKILL");
    }
  },
);
