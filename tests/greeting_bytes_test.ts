/**
 * What a greeting may hold, and what a log line shows: the greeting goes raw to every client, so
 * a control character, a line or paragraph separator, a bidirectional control or a lone surrogate
 * is refused wherever it comes from (flag, config file, PATCH) with the field named; and every log
 * line, text or JSON, shows such characters as escapes, never raw.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultConfig, resolveConfig } from "../server/config/resolve_config.ts";
import { ConfigError } from "../server/common/config_error.ts";
import { formatLogLine } from "../server/log_line.ts";
import { escapeUnprintable, firstUnprintable } from "../server/common/printable.ts";
import { adminFixture } from "./_admin.ts";
import { runTallyho, UNDER_TEST } from "./_server.ts";

const defaults = defaultConfig(2);

/** Every kind the rule refuses, each inside an otherwise fine greeting. */
const REFUSED: [string, string][] = [
  ["ESC", "a\u001b[31mred"],
  ["NUL", "a\u0000b"],
  ["TAB", "a\tb"],
  ["DEL", "a\u007fb"],
  ["NEL (U+0085)", "a\u0085b"],
  ["CSI (U+009B)", "a\u009b2J"],
  ["LINE SEPARATOR (U+2028)", "a\u2028b"],
  ["PARAGRAPH SEPARATOR (U+2029)", "a\u2029b"],
  ["RIGHT-TO-LEFT OVERRIDE (U+202E)", "a\u202eb"],
  ["lone surrogate", "a\ud800b"],
];

test("greeting: controls, separators, bidirectional controls and lone surrogates are refused naming the field and the character", () => {
  for (const [what, greeting] of REFUSED) {
    assert.throws(
      () => resolveConfig({ greeting }, defaults),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, what);
        assert.equal(error.field, "greeting", what);
        assert.match(error.message, /'greeting' must be printable text/, what);
        assert.match(error.message, /U\+[0-9A-F]{4} at character 2/, what);
        assert.equal(firstUnprintable(error.message), null, `${what}: the message is printable`);
        return true;
      },
    );
  }
});

test("greeting: letters of any script, emoji with joiners and punctuation are taken as they are", () => {
  for (const greeting of ["Hello World", "Grüß Gott ", "こんにちは", "👩‍💻 #", "שלום", "a\u00a0b"]) {
    assert.equal(resolveConfig({ greeting }, defaults).greeting, greeting);
  }
});

test("greeting: PATCH with an escape sequence is a 422 naming the field, and nothing changes", async () => {
  const { call, backend } = adminFixture();
  for (const [what, greeting] of REFUSED) {
    const response = await call("/v1/config", { method: "PATCH", json: { greeting } });
    const body = await response.json() as { error: { field?: string; message: string } };
    assert.equal(response.status, 422, what);
    assert.equal(body.error.field, "greeting", what);
    assert.equal(backend.current.greeting, "Hello World", what);
  }
});

test("log line: text and JSON show every control and line separator as an escape, in one line", () => {
  const line = 'tallyho: greeting "\u001b[2J\u0000\u0085\u2028\u2029\u202e\u009b" set';
  const now = new Date(0);
  for (const format of ["text", "json"] as const) {
    const written = formatLogLine(format, "info", line, {}, now);
    assert.equal(firstUnprintable(written), null, `${format}: ${escapeUnprintable(written)}`);
    assert.doesNotMatch(written, /\n|\r/);
  }
  const text = formatLogLine("text", "info", line, {}, now);
  assert.match(text, /\\u001b\[2J\\u0000\\u0085\\u2028\\u2029\\u202e\\u009b/);
  const json = JSON.parse(formatLogLine("json", "info", line, {}, now)) as { message: string };
  assert.equal(json.message, line.replace(/^tallyho: /, ""), "JSON keeps the value");
});

test(`[${UNDER_TEST}] greeting: --greeting with an escape sequence exits 2 with one printable line`, async () => {
  const result = await runTallyho(["serve", "--port", "0", "--greeting", "\u001b[31mHi\u2028"]);
  assert.equal(result.code, 2, result.stderr);
  const lines = result.stderr.trimEnd().split("\n");
  assert.match(lines[0]!, /'greeting' must be printable text/);
  assert.deepEqual(lines.slice(1), ["Run 'tallyho --help' for usage."]);
  for (const line of lines) {
    assert.equal(firstUnprintable(line), null, "no raw control reaches the terminal");
  }
});
