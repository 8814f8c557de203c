/**
 * What another process on the same machine can no longer do to the admin API, each attack made by
 * Python's standard library (no code shared with the server), and for the attacks of another user
 * as a second user (tests/_second_user.ts):
 *
 * - bind the admin port beside the server with SO_REUSEPORT and take some of its connections;
 * - own the TMPDIR the admin API's inner socket is made in, and put a socket of their own in its
 *   place (the server refuses such a TMPDIR); nor, in any TMPDIR, does renaming the socket's
 *   directory away redirect the relay, which holds the directory by descriptor;
 * - create `$TMPDIR/tallyho-<uid>` first and so stop the server from starting: the generated
 *   token lives in no shared directory;
 * - leave the server's inner-socket directories to pile up: a killed supervisor's is removed by
 *   the next start.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { python } from "./_python.ts";
import { secondUser, SKIP_WITHOUT_SECOND_USER } from "./_second_user.ts";
import { isAlive, runTallyho, startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";

const SKIP_PYTHON = skipOffCi(toolMissing("python3", "python3"));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `tallyho-admin-*` entries in `directory`. */
function adminDirectories(directory: string): string[] {
  return readdirSync(directory).filter((name) => name.startsWith("tallyho-admin-")).sort();
}

async function pollFor<T>(what: string, read: () => T, ok: (value: T) => boolean, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = read();
    if (ok(value)) return value;
    if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(value)}`);
    await sleep(20);
  }
}

/** Asks the admin API for /v1/info with the test token; the body as text. */
async function info(server: TestServer): Promise<{ status: number; body: string }> {
  const response = await server.admin("/v1/info", { signal: AbortSignal.timeout(5000) });
  return { status: response.status, body: await response.text() };
}

// Binds HOST:PORT with SO_REUSEPORT, as a second server on the port would; prints what happened.
const CO_BIND = `
import errno, json, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(16)
    print(json.dumps({"bound": True}))
except OSError as e:
    print(json.dumps({"bound": False, "error": errno.errorcode.get(e.errno, str(e.errno))}))
`;

test(
  `[${UNDER_TEST}] admin port: another process cannot bind it beside the server with SO_REUSEPORT`,
  {
    skip: SKIP_PYTHON,
  },
  async () => {
    const server = await startTallyho(["--threads", "1"]);
    try {
      const adminPort = Number(new URL(server.adminUrl!).port);
      const result = await python(CO_BIND, [String(adminPort)], 10_000) as {
        bound: boolean;
        error?: string;
      };
      assert.deepEqual(result, { bound: false, error: "EADDRINUSE" });
      assert.equal((await info(server)).status, 200);
    } finally {
      await server.stop();
    }
  },
);

// Run as the owner of TMPDIR: moves the admin API's socket directory away, puts a directory of
// its own with a listening socket under the same name, and answers the first request it gets
// with a forged body, printing the Authorization header it was sent (null if none came).
const TAKE_PLACE = `
import json, os, socket, sys
tmp, seconds = sys.argv[1], float(sys.argv[2])
name = [n for n in os.listdir(tmp) if n.startswith("tallyho-admin-")][0]
os.rename(os.path.join(tmp, name), os.path.join(tmp, name + "-moved"))
os.mkdir(os.path.join(tmp, name))
listener = socket.socket(socket.AF_UNIX)
listener.bind(os.path.join(tmp, name, "http.sock"))
listener.listen(8)
listener.settimeout(seconds)
captured = None
try:
    conn, _ = listener.accept()
    conn.settimeout(2)
    request = conn.recv(65536).decode("latin1")
    for line in request.split("\\r\\n"):
        if line.lower().startswith("authorization:"):
            captured = line.split(":", 1)[1].strip()
    body = b'{"forged":true}'
    conn.sendall(b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: %d\\r\\nconnection: close\\r\\n\\r\\n%s" % (len(body), body))
    conn.close()
except socket.timeout:
    pass
print(json.dumps({"captured": captured}))
`;

/** Runs TAKE_PLACE (as `wrap`'s user) and, once its socket is there, asks the server for /v1/info. */
async function takePlaceThenAsk(server: TestServer, tmp: string, wrap: string[] = []) {
  const names = adminDirectories(tmp);
  const attack = python(TAKE_PLACE, [tmp, "4"], 20_000, wrap) as Promise<
    { captured: string | null }
  >;
  await pollFor(
    "the attacker's socket",
    () =>
      names.every((name) => existsSync(join(tmp, name, "http.sock"))) &&
      adminDirectories(tmp).length > names.length,
    Boolean,
  );
  await sleep(100);
  const answer = await info(server);
  return { answer, attacker: await attack };
}

test(
  `[${UNDER_TEST}] admin socket: renaming its directory and putting another socket in its place does not redirect the operator's requests`,
  {
    skip: SKIP_PYTHON,
  },
  async () => {
    const tmp = mkdtempSync(join(tmpdir(), "tallyho-admin-place-"));
    const server = await startTallyho(["--threads", "1"], { env: { TMPDIR: tmp } });
    try {
      const { answer, attacker } = await takePlaceThenAsk(server, tmp);
      assert.equal(attacker.captured, null, "the socket put in its place got no request");
      assert.equal(answer.status, 200);
      assert.equal((JSON.parse(answer.body) as { pid?: number }).pid, server.pid, answer.body);
    } finally {
      await server.stop();
      rmSync(tmp, { recursive: true, force: true });
    }
  },
);

test(
  `[${UNDER_TEST}] admin socket: a TMPDIR that another user owns is refused in one line, so they cannot take the socket's place`,
  {
    skip: SKIP_WITHOUT_SECOND_USER,
  },
  async () => {
    const other = secondUser();
    const base = mkdtempSync(join(tmpdir(), "tallyho-hostile-tmp-"));
    chmodSync(base, 0o755);
    const hostile = join(base, "tmp");
    mkdirSync(hostile, { mode: 0o755 });
    chownSync(hostile, other.uid, other.gid);
    let server: TestServer | null = null;
    try {
      try {
        server = await startTallyho(["--threads", "1"], { env: { TMPDIR: hostile } });
      } catch (error) {
        const message = (error as Error).message;
        assert.match(message, /exited with 2 before listening/, message);
        assert.match(
          message,
          new RegExp(`TMPDIR '${hostile}': it is owned by another user \\(uid ${other.uid}\\)`),
        );
        assert.deepEqual(adminDirectories(hostile), [], "nothing was made in it");
        return;
      }
      // It started: show what the owner of TMPDIR can do with that.
      const { answer, attacker } = await takePlaceThenAsk(server, hostile, other.run([]));
      assert.fail(
        `started with a TMPDIR owned by uid ${other.uid}, who then took the socket's place: ` +
          `captured ${JSON.stringify(attacker.captured)}, the operator got ${answer.body}`,
      );
    } finally {
      await server?.stop();
      rmSync(base, { recursive: true, force: true });
      other.remove();
    }
  },
);

test(
  `[${UNDER_TEST}] admin token: another user creating $TMPDIR/tallyho-<uid> first (a directory open to all, or a link) does not stop the server or 'tallyho admin-token'`,
  {
    skip: SKIP_WITHOUT_SECOND_USER,
  },
  async () => {
    const other = secondUser();
    const base = mkdtempSync(join(tmpdir(), "tallyho-shared-tmp-"));
    chmodSync(base, 0o755);
    const shared = join(base, "tmp");
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    const home = join(base, "home");
    mkdirSync(home, { mode: 0o700 });
    const planted = join(shared, `tallyho-${process.getuid!()}`);
    const env = { TMPDIR: shared, HOME: home };
    const unset = ["TALLYHO_ADMIN_TOKEN", "XDG_RUNTIME_DIR", "RUNTIME_DIRECTORY", "XDG_STATE_HOME"];
    try {
      for (const plant of [`mkdir -m 0777 ${planted}`, `ln -s /etc ${planted}`]) {
        const made = await python(
          `import json, subprocess, sys\nsubprocess.run(sys.argv[1], shell=True, check=True)\nprint(json.dumps(1))`,
          [plant],
          10_000,
          other.run([]),
        );
        assert.equal(made, 1);
        const server = await startTallyho(["--threads", "1"], { env, unset });
        try {
          const cliEnv: Record<string, string | undefined> = { ...process.env, ...env };
          for (const name of unset) delete cliEnv[name];
          const printed = await runTallyho(["admin-token"], 20_000, cliEnv);
          assert.equal(printed.code, 0, printed.stderr);
          const token = printed.stdout.trim();
          assert.match(token, /^[0-9a-f]{64}$/);
          const response = await fetch(`${server.adminUrl}/v1/info`, {
            headers: { authorization: `Bearer ${token}` },
          });
          assert.equal(response.status, 200, `${plant}: the printed token works`);
          await response.body?.cancel();
          assert.match(server.output(), new RegExp(`(generated into|read from) ${home}/`));
        } finally {
          await server.stop();
          rmSync(planted, { recursive: true, force: true });
        }
      }
    } finally {
      rmSync(base, { recursive: true, force: true });
      other.remove();
    }
  },
);

// Binds a Unix socket at each path given; "stale" ones are closed at once (the file stays, and
// connecting to it is refused), "live" ones listen until this program is killed.
const SOCKETS = `
import json, os, socket, sys, time
live = []
for spec in sys.argv[1:]:
    kind, path = spec.split("=", 1)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(1)
    if kind == "stale":
        s.close()
    else:
        live.append(s)
print(json.dumps("ready"), flush=True)
time.sleep(60)
`;

test(
  `[${UNDER_TEST}] admin socket: the directory a killed supervisor left behind is removed by the next start, one still listened on is kept`,
  {
    skip: SKIP_PYTHON,
  },
  async () => {
    const tmp = mkdtempSync(join(tmpdir(), "tallyho-leftover-"));
    let holder: ChildProcess | null = null;
    let second: TestServer | null = null;
    try {
      const first = await startTallyho(["--threads", "1"], { env: { TMPDIR: tmp } });
      const [left] = adminDirectories(tmp);
      assert.ok(left !== undefined, "the first server made its directory");
      process.kill(first.pid, "SIGKILL");
      await first.exited;
      for (const pid of first.childPids().values()) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Gone already.
        }
      }
      const children = [...first.childPids().values()];
      await pollFor(
        "the killed tree gone",
        () => children.filter(isAlive),
        (alive) => !alive.length,
      );
      assert.deepEqual(adminDirectories(tmp), [left], "kill -9 leaves the directory behind");
      // Directories named as before 2026-12 (no pid): one whose socket refuses, one listened on.
      const stale = join(tmp, "tallyho-admin-OldOne", "http.sock");
      const live = join(tmp, "tallyho-admin-LiveOn", "http.sock");
      holder = spawn("python3", ["-c", SOCKETS, `stale=${stale}`, `live=${live}`], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      await new Promise((resolve) => holder!.stdout!.once("data", resolve));
      second = await startTallyho(["--threads", "1"], { env: { TMPDIR: tmp } });
      const secondPid = second.pid;
      const remaining = await pollFor(
        "only the live directories remain",
        () => adminDirectories(tmp),
        (names) => names.length === 2,
      );
      assert.equal(remaining.length, 2);
      assert.ok(remaining.includes("tallyho-admin-LiveOn"), JSON.stringify(remaining));
      assert.ok(
        remaining.some((name) => name.startsWith(`tallyho-admin-${secondPid}-`)),
        JSON.stringify(remaining),
      );
    } finally {
      holder?.kill("SIGKILL");
      await second?.stop();
      rmSync(tmp, { recursive: true, force: true });
    }
  },
);
