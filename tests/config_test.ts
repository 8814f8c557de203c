import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultConfig, resolveConfig } from "../server/config/resolve_config.ts";

const base = defaultConfig(4);

test("config fills defaults: chunk framing, connection numbering, port 9000, cores threads", () => {
  const config = resolveConfig({}, base);
  assert.equal(config.port, 9000);
  assert.equal(config.threads, 4);
  assert.equal(config.framing, "chunk");
  assert.equal(config.numberBy, "connection");
  assert.equal(config.greeting, "Hello World");
  assert.equal(config.maxLineBytes, 65536);
  assert.equal(config.firstNumber, 1);
});

test("config rejects out-of-range values naming the field, bounds and what was given", () => {
  assert.throws(() => resolveConfig({ port: 70000 }, base), {
    name: "ConfigError",
    field: "port",
    message: "'port' must be an integer from 0 to 65535: got 70000",
  });
  assert.throws(() => resolveConfig({ threads: 0 }, base), /'threads' must be .* got 0/);
  assert.throws(
    () => resolveConfig({ firstNumber: 2 ** 53 }, base),
    /'first-number'.*9007199254740991/,
  );
  assert.throws(
    () => resolveConfig({ framing: "words" as "line" }, base),
    /'framing' must be one of chunk, line: got "words"/,
  );
  assert.throws(() => resolveConfig({ greeting: "a\nb" }, base), /'greeting' must not contain/);
  assert.throws(() => resolveConfig({ maxLineBytes: 1.5 }, base), /'max-line-bytes'/);
});

test("config rejects unknown keys with a ConfigShapeError naming the key", () => {
  assert.throws(() => resolveConfig({ colour: "red" } as never, base), {
    name: "ConfigShapeError",
    field: "colour",
    message: "Unknown option 'colour'",
  });
});
