/**
 * What an operator types and what they are told back (issue 13): durations in ms, s, m and h
 * echoed as typed, negative numbers read as values, a host that is no address refused before
 * anything starts, the config file taking the same keys as the flags (`admin`,
 * `admin-token-file`) with the line and column of a JSON mistake and a "did you mean" for a
 * misspelt key, and a busy admin port named as `--admin` before any child is started.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseServeArgs } from "../cli/serve.ts";
import { defaultConfig, LIMITS, resolveConfig } from "../server/config/resolve_config.ts";
import {
  optionsFromJson,
  parseDuration,
  readConfigFileWith,
} from "../server/config/config_json.ts";
import { jsonErrorPosition } from "../server/config/json_error_position.ts";
import { runTallyho, UNDER_TEST } from "./_server.ts";

function oneLine(stderr: string, expected: RegExp): void {
  const lines = stderr.trim().split("\n");
  assert.match(lines[0]!, expected, stderr);
  assert.ok(lines.length <= 2, `more than an error and a hint:\n${stderr}`);
  assert.doesNotMatch(stderr, /^\s+at /m, "no stack trace");
}

function withFile<T>(name: string, text: string, body: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-opconf-"));
  try {
    const path = join(dir, name);
    writeFileSync(path, text);
    return body(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("durations: ms, s, m and h are read; a bound is checked as typed", () => {
  assert.equal(parseDuration("d", "250ms"), 250);
  assert.equal(parseDuration("d", "10s"), 10_000);
  assert.equal(parseDuration("d", "1.5s"), 1500);
  assert.equal(parseDuration("d", "5m"), 300_000);
  assert.equal(parseDuration("d", "1h"), 3_600_000);
  assert.equal(parseDuration("d", "1h", LIMITS.drainTimeoutMs), 3_600_000);
  assert.throws(() => parseDuration("drain-timeout", "2h", LIMITS.drainTimeoutMs), {
    name: "ConfigError",
    message:
      `'drain-timeout' must be a duration from 0s to 1h such as 500ms, 10s, 5m or 1h: got "2h"`,
  });
  // "5000" is 5000 seconds: the error shows what was typed and says how it was read, never the
  // 5000000 milliseconds it became.
  assert.throws(() => parseDuration("drain-timeout", "5000", LIMITS.drainTimeoutMs), {
    message:
      `'drain-timeout' must be a duration from 0s to 1h such as 500ms, 10s, 5m or 1h: got "5000" (a number without a unit is seconds)`,
  });
});

test("serve flags: durations with m and h, a negative number is a value", () => {
  const parsed = parseServeArgs(["--drain-timeout", "1h", "--idle-timeout", "5m"]);
  assert.ok(typeof parsed === "object");
  assert.equal(parsed.options.drainTimeoutMs, 3_600_000);
  assert.equal(parsed.options.idleTimeoutMs, 300_000);
  const negative = parseServeArgs(["--max-connections", "-1"]);
  assert.ok(typeof negative === "object");
  assert.equal(negative.options.maxConnections, -1, "read as the value, refused by its bounds");
});

test("host: an address that is no IP address or host name is a ConfigError naming 'host'", () => {
  for (const host of ["999.1.1.1", "1.2.3", "::1::2", "bad host", "-x.example"]) {
    assert.throws(() => resolveConfig({ host }, defaultConfig(2)), {
      name: "ConfigError",
      field: "host",
      message: new RegExp(`^'host' must be an IPv4 or IPv6 address or a host name: got "`),
    }, host);
  }
  for (const host of ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "db-1.internal."]) {
    assert.equal(resolveConfig({ host }, defaultConfig(2)).host, host);
  }
});

test("config file: a trailing comma is reported with its line and column", () => {
  withFile("bad.json", `{\n  "port": 9000,\n  "threads": 2,\n}\n`, (path) => {
    assert.throws(() => readConfigFileWith(path, []).options, {
      name: "ConfigFileError",
      message: new RegExp(
        `^Config file ${path.replaceAll(/[.*+?^${}()|[\]\\]/g, "\\$&")}` +
          ` is not valid JSON at line 4, column 1: a trailing comma before '\\}'`,
      ),
    });
  });
  withFile("bad2.json", `{"port": 9000 "threads": 2}`, (path) => {
    assert.throws(
      () => readConfigFileWith(path, []).options,
      /at line 1, column 15: expected ',' or '\}'/,
    );
  });
});

test("config file and PATCH keys: a misspelt key gets a 'did you mean'", () => {
  assert.throws(() => optionsFromJson({ maxConnections: 5 }), {
    name: "ConfigShapeError",
    message: "Unknown configuration key 'maxConnections' (did you mean 'max-connections'?)",
  });
  assert.throws(() => optionsFromJson({ "idle-timout": "5s" }), {
    message: "Unknown configuration key 'idle-timout' (did you mean 'idle-timeout'?)",
  });
  assert.throws(() => optionsFromJson({ colour: "blue" }), {
    message: "Unknown configuration key 'colour'",
  });
});

const badCommandLines: Array<[string[], RegExp]> = [
  [
    ["--drain-timeout", "5000"],
    /^tallyho: 'drain-timeout' must be a duration from 0s to 1h .*: got "5000" \(a number without a unit is seconds\)$/,
  ],
  [
    ["--max-connections", "-1"],
    /^tallyho: 'max-connections' must be an integer from 1 to 10000000: got -1$/,
  ],
  [
    ["--host", "999.1.1.1"],
    /^tallyho: 'host' must be an IPv4 or IPv6 address or a host name: got "999\.1\.1\.1"$/,
  ],
  [
    ["--host", "10.255.255.254"],
    /^tallyho: 'host' "10\.255\.255\.254" cannot be listened on here \(E[A-Z]+\): give one of/,
  ],
  [
    ["--max-conections", "5"],
    /^tallyho: Unknown option '--max-conections' \(did you mean '--max-connections'\?\)$/,
  ],
];

for (const [args, expected] of badCommandLines) {
  test(`[${UNDER_TEST}] cli: '${args.join(" ")}' is one line naming the problem as typed, exit 2`, async () => {
    const { code, stderr, stdout } = await runTallyho([...args, "--port", "0", "--admin", "off"]);
    assert.equal(code, 2, `exit code; stderr:\n${stderr}`);
    oneLine(stderr, expected);
    assert.equal(stdout, "", "nothing starts");
  });
}

test(`[${UNDER_TEST}] config file: 'admin' and 'admin-token-file' are keys like the flags`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-opconf-"));
  try {
    const config = join(dir, "tallyho.json");
    writeFileSync(config, JSON.stringify({ admin: "nowhere", "admin-token-file": "/x" }));
    const bad = await runTallyho(["--config", config, "--port", "0"]);
    assert.equal(bad.code, 2, bad.stderr);
    oneLine(bad.stderr, /^tallyho: 'admin' must be HOST:PORT .* got "nowhere"$/);
    // A flag still wins over the file.
    const parsed = parseServeArgs(["--admin", "off"]);
    assert.ok(typeof parsed === "object");
    assert.equal(parsed.admin.address, "off");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`[${UNDER_TEST}] a busy admin port is named as --admin, and nothing was started before`, async () => {
  const holder: Server = createServer();
  await new Promise<void>((resolve) => holder.listen({ port: 0, host: "127.0.0.1" }, resolve));
  const port = (holder.address() as { port: number }).port;
  try {
    const { code, stdout, stderr } = await runTallyho([
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--admin",
      `127.0.0.1:${port}`,
    ]);
    assert.equal(code, 1, stderr);
    oneLine(
      stderr,
      new RegExp(
        `^tallyho: Cannot listen on 127\\.0\\.0\\.1:${port}: the address is in use .*--admin`,
      ),
    );
    assert.doesNotMatch(stderr, /--port/);
    assert.doesNotMatch(stdout, /process \d+ listening/, "no child was started");
    assert.equal(stdout, "");
  } finally {
    holder.close();
  }
});

test("JSON error position: line, column and what was expected, for each kind of mistake", () => {
  const cases: Array<[string, number, number, RegExp]> = [
    ['{"a": 1,}', 1, 9, /trailing comma before '\}'/],
    ["[1, 2,]", 1, 7, /trailing comma before '\]'/],
    ["{\n  'a': 1\n}", 2, 3, /single quotes \(JSON needs double quotes\)/],
    ['{"a": "x\n"}', 1, 9, /control character/],
    ['{"a": "x', 1, 9, /never ends/],
    ['{"a" 1}', 1, 6, /expected ':' after the key/],
    ['{"a": tru}', 1, 7, /expected a value/],
    ['{"a": 1} x', 1, 10, /expected the end of the file/],
    ["", 1, 1, /expected a value, found the end of the file/],
  ];
  for (const [text, line, column, problem] of cases) {
    assert.throws(() => JSON.parse(text), SyntaxError, text);
    const at = jsonErrorPosition(text);
    assert.ok(at, text);
    assert.equal(at.line, line, text);
    assert.equal(at.column, column, text);
    assert.match(at.problem, problem, text);
  }
  for (const valid of ['{"a": [1, -2.5e3, true, null, "\\u00e9"]}', " 1 ", '"x"']) {
    assert.equal(jsonErrorPosition(valid), null, valid);
  }
});

test(`[${UNDER_TEST}] config file errors name the file, say the system's reason in words, refuse a key given twice, and do not send the operator to --help`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-opconf-"));
  try {
    const config = join(dir, "tallyho.json");
    const cases: Array<[string, RegExp]> = [
      // A value the file gives: the line says it is the file's.
      [
        '{"threads": "4"}',
        /^tallyho: Config file \S+tallyho\.json: 'threads' must be an integer from 1 to \d+: got "4"$/,
      ],
      // JSON.parse would keep the second silently.
      [
        '{"port": 1,\n "port": 2}',
        /^tallyho: Config file \S+ gives 'port' twice \(again at line 2, column 2\): keep one$/,
      ],
      // A file it names that is not there: the reason in words, the code for searching.
      [
        `{"tls-cert": ${JSON.stringify(join(dir, "none.pem"))}, "tls-key": ${
          JSON.stringify(join(dir, "none.key"))
        }}`,
        /^tallyho: Config file \S+: Cannot read 'tls-cert' file \S+none\.pem: no such file or directory \(ENOENT\)$/,
      ],
    ];
    for (const [text, expected] of cases) {
      writeFileSync(config, text);
      const run = await runTallyho(["serve", "--config", config, "--port", "0"]);
      assert.equal(run.code, 2, run.stderr);
      oneLine(run.stderr, expected);
      assert.doesNotMatch(run.stderr, /tallyho --help/, "a file's problem is not a usage one");
    }
    // The same bad value as a flag is the command line's: that one keeps the hint.
    const flag = await runTallyho(["serve", "--threads", "x", "--port", "0"]);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /Run 'tallyho --help' for usage\./);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`[${UNDER_TEST}] admin token and state files that cannot be read say the system's reason in words with its code, not a bare code`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-opconf-"));
  try {
    // The state file's directory must be closed to other users; a directory where a file is
    // expected fails the read with EISDIR, even as root.
    chmodSync(dir, 0o700);
    const missing = join(dir, "none.token");
    const directory = join(dir, "a-directory");
    mkdirSync(directory);
    const cases: Array<[string[], number, RegExp]> = [
      [
        ["serve", "--port", "0", "--admin-token-file", missing],
        2,
        /^tallyho: Cannot read 'admin-token-file' '\S+none\.token': no such file or directory \(ENOENT\)$/,
      ],
      [
        ["serve", "--port", "0", "--admin", "off", "--state", directory],
        1,
        /^tallyho: Cannot read state file \S+a-directory: it is a directory \(EISDIR\)$/,
      ],
      [
        ["admin-token", "--admin-token-file", directory],
        1,
        /^tallyho: cannot read the admin token at \S+a-directory: it is a directory \(EISDIR\)$/,
      ],
      [
        ["check", "--port", "0", "--admin", "off", "--state", join(dir, "no-dir", "x.state")],
        2,
        /^tallyho: State file \S+x\.state cannot be created: \S+no-dir: no such file or directory \(ENOENT\)$/,
      ],
    ];
    for (const [args, code, expected] of cases) {
      const run = await runTallyho(args);
      assert.equal(run.code, code, `${args.join(" ")}: ${run.stderr}`);
      oneLine(run.stderr, expected);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
