/**
 * The command line as an operator meets it: one-line errors, exit codes, signals.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import process from "node:process";
import { test } from "node:test";
import { main } from "../cli/main.ts";
import { LineClient } from "./_client.ts";
import { FAST_STATS, runTallyho, startTallyho, tallyhoCommand, UNDER_TEST } from "./_server.ts";
import { waitUntil } from "./_wait.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";
import pkg from "../package.json" with { type: "json" };

function assertOneLineError(stderr: string, expected: RegExp) {
  const lines = stderr.trim().split("\n");
  assert.match(lines[0]!, expected);
  assert.ok(lines.length <= 2, `more than an error and a hint:\n${stderr}`);
  assert.doesNotMatch(stderr, /^\s+at /m, "no stack trace");
}

const badCommandLines: Array<[string[], RegExp]> = [
  [["--bogus"], /^tallyho: Unknown option '--bogus'$/],
  [["--port", "70000"], /^tallyho: 'port' must be an integer from 0 to 65535: got 70000$/],
  [["--port", "abc"], /^tallyho: 'port' must be an integer: got "abc"$/],
  [["--threads", "0"], /^tallyho: 'threads' must be an integer from 1 to 256: got 0$/],
  [["--framing", "words"], /^tallyho: 'framing' must be one of chunk, line: got "words"$/],
  [
    ["--number-by", "client"],
    /^tallyho: 'number-by' must be one of connection, message: got "client"$/,
  ],
  [
    ["--first-number", "9007199254740992"],
    /^tallyho: 'first-number' must be an integer from 1 to 9007199254740991/,
  ],
  [["--port"], /^tallyho: Option '--port' needs a value$/],
  [["serve", "extra"], /^tallyho: Unexpected argument "extra"$/],
  [["frobnicate"], /^tallyho: Unknown command "frobnicate"$/],
];

for (const [args, expected] of badCommandLines) {
  test(`[${UNDER_TEST}] cli: '${args.join(" ")}' is one line naming the problem and exit code 2`, async () => {
    const { code, stderr, stdout } = await runTallyho(args);
    assert.equal(code, 2, `exit code; stderr:\n${stderr}`);
    assertOneLineError(stderr, expected);
    assert.match(stderr, /Run 'tallyho --help' for usage\./);
    assert.equal(stdout, "", "nothing starts");
  });
}

test(`[${UNDER_TEST}] cli: a busy port is one line and exit code 1, whoever holds it`, async () => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen({ port: 0, host: "127.0.0.1" }, resolve));
  const port = (holder.address() as { port: number }).port;
  try {
    const { code, stderr } = await runTallyho([
      "serve",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
    ]);
    assert.equal(code, 1);
    assertOneLineError(
      stderr,
      new RegExp(`^tallyho: Cannot listen on 127.0.0.1:${port}: the address is in use`),
    );
  } finally {
    holder.close();
  }
  // Another tallyho holds its port with SO_REUSEPORT; a second one must refuse, not share it.
  const first = await startTallyho(["--threads", "1"]);
  try {
    const { code, stderr } = await runTallyho([
      "--host",
      "127.0.0.1",
      "--port",
      String(first.port),
    ]);
    assert.equal(code, 1);
    assertOneLineError(stderr, /the address is in use/);
  } finally {
    await first.stop();
  }
});

test(
  `[${UNDER_TEST}] cli: a port below 1024 without CAP_NET_BIND_SERVICE is blamed on the port, with the ways to allow it, for --port and --admin`,
  {
    skip: skipOffCi(
      process.getuid?.() !== 0
        ? "needs root, to take CAP_NET_BIND_SERVICE away from a child (setpriv)"
        : toolMissing("setpriv", "util-linux"),
    ),
  },
  () => {
    // Root without the capability, as an ordinary user is: the bind is refused with EACCES.
    const unprivileged = [
      "setpriv",
      "--bounding-set=-net_bind_service",
      "--inh-caps=-net_bind_service",
    ];
    const cases: Array<[string[], RegExp]> = [
      [
        ["--port", "443", "--admin", "off"],
        /^tallyho: 'port' 443 needs privileges here \(EACCES\): ports below \d+ are reserved for processes with CAP_NET_BIND_SERVICE\. Use a port of \d+ or more, .*AmbientCapabilities=CAP_NET_BIND_SERVICE.*ip_unprivileged_port_start$/,
      ],
      [
        ["--port", "0", "--admin", "127.0.0.1:80"],
        /^tallyho: 'admin' port 80 needs privileges here \(EACCES\)/,
      ],
    ];
    for (const [args, expected] of cases) {
      const { cmd, argv, cwd } = tallyhoCommand(["serve", "--host", "127.0.0.1", ...args]);
      const run = spawnSync(unprivileged[0]!, [...unprivileged.slice(1), cmd, ...argv], {
        cwd,
        encoding: "utf8",
        timeout: 20_000,
      });
      assert.equal(run.status, 2, run.stderr);
      assert.match(run.stderr.split("\n")[0]!, expected);
      assert.doesNotMatch(run.stderr, /give one of this machine's addresses/);
    }
  },
);

test(`[${UNDER_TEST}] cli: --help and --version`, async () => {
  const help = await runTallyho(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage:/);
  for (
    const flag of [
      "--host",
      "--port",
      "--threads",
      "--framing",
      "--number-by",
      "--greeting",
      "--max-line-bytes",
      "--first-number",
    ]
  ) {
    assert.ok(help.stdout.includes(flag), `usage names ${flag}`);
  }
  const version = await runTallyho(["--version"]);
  assert.equal(version.code, 0);
  // A compiled build names its commit, build date and target (compile.sh); from source, not.
  const build = UNDER_TEST === "binary"
    ? "commit [0-9a-f]{12}(-dirty)?, built \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ, for linux-(x64|arm64)\\S*; "
    : "";
  assert.match(
    version.stdout.trim(),
    new RegExp(
      `^tallyho ${pkg.version.replaceAll(".", "\\.")} \\(${build}(bun|deno) \\d+\\.\\d+\\.\\d+\\)$`,
    ),
  );
});

test(`[${UNDER_TEST}] cli: the start line names version, runtime, bound address and threads`, async () => {
  const server = await startTallyho(["--threads", "3"]);
  try {
    assert.match(
      server.output(),
      new RegExp(
        // --log-format text (the default): an ISO time and the level before the line.
        `^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z info tallyho ${
          pkg.version.replaceAll(".", "\\.")
        } on (bun|deno) [\\d.]+: listening on 127\\.0\\.0\\.1:${server.port} with 1 process x 3 threads`,
        "m",
      ),
    );
    assert.notEqual(server.port, 0);
  } finally {
    await server.stop();
  }
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  test(`[${UNDER_TEST}] cli: ${signal} stops accepting, lets in-flight replies finish and exits 0`, async () => {
    const server = await startTallyho([
      "--threads",
      "2",
      "--framing",
      "line",
      "--number-by",
      "message",
    ], { env: FAST_STATS });
    const client = await LineClient.connect(server.port);
    client.send("x\n".repeat(20_000));
    // The signal once the server has read all 20,000 lines (its 'messages' figure), not once the
    // first reply came: lines still in the socket when the drain begins are not in flight (on a
    // loaded machine 16,370 had been read by then).
    await waitUntil(async () => {
      const { totals } = await (await server.admin("/v1/stats")).json();
      return totals.messages >= 20_000;
    }, { what: "the server to have read all 20,000 lines" });
    const code = await server.stop(signal);
    assert.equal(code, 0, `exit; server output:\n${server.output()}`);
    // Every reply to the 20,000 lines already read was written before the close.
    const lines = await client.lines(20_000, 5000);
    assert.equal(lines.length, 20_000, `${lines.length} replies before close`);
    await client.closedPromise;
    await assert.rejects(LineClient.connect(server.port), "no longer accepting");
  });
}

test("cli: on a system other than Linux a command is one line and exit 1; --help and --version still answer", async () => {
  const platform = Object.getOwnPropertyDescriptor(process, "platform")!;
  Object.defineProperty(process, "platform", { value: "darwin", configurable: true });
  try {
    const run = async (args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
      return { code, out, err };
    };
    for (const args of [[], ["serve", "--port", "0"], ["check"], ["doctor"]]) {
      const { code, out, err } = await run(args);
      assert.equal(code, 1, args.join(" "));
      assert.deepEqual(out, []);
      assert.deepEqual(err, ["tallyho: runs on Linux only (SO_REUSEPORT, /proc); this is darwin"]);
    }
    assert.equal((await run(["--version"])).code, 0);
    assert.equal((await run(["--help"])).code, 0);
  } finally {
    Object.defineProperty(process, "platform", platform);
  }
});
