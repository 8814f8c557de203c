/**
 * Where the admin token is, for root and other users, with and without `XDG_RUNTIME_DIR`
 * (issue 13): one rule (admin/token.ts), and `tallyho admin-token [--path]` that prints the
 * file the running server named in its start line and the token it accepts.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { defaultTokenPath } from "../admin/token.ts";
import { adminTokenMain } from "../cli/admin_token.ts";
import { tallyhoCommand, UNDER_TEST } from "./_server.ts";

test("token path: systemd's RUNTIME_DIRECTORY, then XDG_RUNTIME_DIR, then XDG_STATE_HOME or ~/.local/state", () => {
  assert.equal(
    defaultTokenPath({ RUNTIME_DIRECTORY: "/run/tallyho", XDG_RUNTIME_DIR: "/run/user/1000" }),
    "/run/tallyho/admin-token",
  );
  assert.equal(
    defaultTokenPath({ RUNTIME_DIRECTORY: "/run/tallyho:/run/other" }),
    "/run/tallyho/admin-token",
  );
  assert.equal(
    defaultTokenPath({ XDG_RUNTIME_DIR: "/run/user/1000" }),
    "/run/user/1000/tallyho/admin-token",
  );
  assert.equal(
    defaultTokenPath({ XDG_STATE_HOME: "/srv/state", HOME: "/root" }),
    "/srv/state/tallyho/admin-token",
  );
  assert.equal(defaultTokenPath({ HOME: "/root" }), "/root/.local/state/tallyho/admin-token");
});

/**
 * The environment of a server and an operator's shell: no token configured, no session dir, and
 * a home of the test's own (where the token goes without XDG_RUNTIME_DIR).
 */
function bareEnv(tmp: string, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  const unset = ["TALLYHO_ADMIN_TOKEN", "XDG_RUNTIME_DIR", "RUNTIME_DIRECTORY", "XDG_STATE_HOME"];
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (unset.includes(key)) continue;
    env[key] = value;
  }
  return { ...env, TMPDIR: tmp, HOME: tmp, ...extra };
}

function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { cmd, argv, cwd } = tallyhoCommand(args);
  const child = spawn(cmd, argv, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    })
  );
}

/** Starts a server with `env` and resolves with its admin URL and the token file it named. */
function startWith(
  env: Record<string, string>,
): Promise<{ child: ChildProcess; url: string; named: string }> {
  const { cmd, argv, cwd } = tallyhoCommand([
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--threads",
    "1",
    "--admin",
    "127.0.0.1:0",
  ]);
  const child = spawn(cmd, argv, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no admin line within 20 s:\n${output}`));
    }, 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /admin API on (http:\/\/\S+?)\/ \(bearer token generated into (\S+)\)/.exec(
        output,
      ) ?? /admin API on (http:\/\/\S+?)\/ \(bearer token read from (\S+)\)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ child, url: match[1]!, named: match[2]! });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
  });
}

for (
  const [name, extra] of [
    ["without XDG_RUNTIME_DIR (root, containers, ssh)", {}],
    ["with XDG_RUNTIME_DIR", { XDG_RUNTIME_DIR: "xdg" }],
    ["under systemd's RuntimeDirectory", { RUNTIME_DIRECTORY: "unit" }],
  ] as const
) {
  test(`[${UNDER_TEST}] admin-token: ${name}, --path names the server's file and the token opens the API`, async () => {
    const tmp = mkdtempSync(join(tmpdir(), "tallyho-token-cli-"));
    // Relative names stand for directories inside this test's own temporary one.
    const env = bareEnv(
      tmp,
      Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, join(tmp, v)])),
    );
    const server = await startWith(env);
    try {
      const where = await run(["admin-token", "--path"], env);
      assert.equal(where.code, 0, where.stderr);
      assert.equal(where.stdout.trim(), server.named);
      assert.ok(server.named.startsWith(tmp), `${server.named} is under ${tmp}`);
      assert.equal(statSync(server.named).mode & 0o077, 0, "only its owner can read it");
      const printed = await run(["admin-token"], env);
      assert.equal(printed.code, 0, printed.stderr);
      const token = printed.stdout.trim();
      assert.equal(token, readFileSync(server.named, "utf8").trim());
      const ok = await fetch(`${server.url}/v1/info`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(ok.status, 200);
      await ok.body?.cancel();
    } finally {
      server.child.kill("SIGTERM");
      await new Promise((resolve) => server.child.once("exit", resolve));
      rmSync(tmp, { recursive: true, force: true });
    }
  });
}

test(`[${UNDER_TEST}] admin-token: before any server started, it says where the token will be`, async () => {
  const tmp = mkdtempSync(join(tmpdir(), "tallyho-token-cli-"));
  try {
    const printed = await run(["admin-token"], bareEnv(tmp));
    assert.equal(printed.code, 1);
    assert.match(
      printed.stderr.trim(),
      /^tallyho: no admin token at \S+admin-token yet: the server writes one there when it starts/,
    );
    assert.ok(printed.stderr.includes(tmp), printed.stderr);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("admin-token: an operator's shell finds the systemd unit's token when it has none of its own", () => {
  const tmp = mkdtempSync(join(tmpdir(), "tallyho-token-cli-"));
  try {
    const unitToken = join(tmp, "run-tallyho-admin-token");
    writeFileSync(unitToken, "f".repeat(64) + "\n", { mode: 0o600 });
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
    const env = { XDG_RUNTIME_DIR: join(tmp, "nothing-here") };
    assert.equal(adminTokenMain(["--path"], io, env, unitToken), 0);
    assert.equal(adminTokenMain([], io, env, unitToken), 0);
    assert.deepEqual(out, [unitToken, "f".repeat(64)]);
    // This user's own file, when there is one, comes first.
    const xdg = join(tmp, "xdg");
    mkdirSync(join(xdg, "tallyho"), { recursive: true });
    writeFileSync(join(xdg, "tallyho", "admin-token"), "e".repeat(64));
    out.length = 0;
    assert.equal(adminTokenMain(["--path"], io, { XDG_RUNTIME_DIR: xdg }, unitToken), 0);
    assert.deepEqual(out, [join(xdg, "tallyho", "admin-token")]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
