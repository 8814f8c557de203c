import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultConfig, resolveConfig } from "../server/config/resolve_config.ts";
import { configToJson, optionsFromJson, parseDuration } from "../server/config/config_json.ts";

test("config JSON uses the flags' names and round-trips", () => {
  const config = resolveConfig(
    { numberBy: "message", maxLineBytes: 100, drainTimeoutMs: 2500 },
    defaultConfig(2),
  );
  const json = configToJson(config);
  assert.equal(json["number-by"], "message");
  assert.equal(json["max-line-bytes"], 100);
  assert.equal(json["drain-timeout"], "2500ms");
  assert.deepEqual(resolveConfig(optionsFromJson(json), defaultConfig(2)), config);
});

test("config JSON rejects unknown keys and non-objects naming what was given", () => {
  assert.throws(() => optionsFromJson({ numberBy: "message" }), {
    name: "ConfigShapeError",
    field: "numberBy",
    message: "Unknown configuration key 'numberBy' (did you mean 'number-by'?)",
  });
  assert.throws(() => optionsFromJson([1]), /must be a JSON object: got \[1\]/);
});

test("durations read as 10s, 500ms, 1.5s or a number of seconds", () => {
  assert.equal(parseDuration("d", "10s"), 10_000);
  assert.equal(parseDuration("d", "500ms"), 500);
  assert.equal(parseDuration("d", "1.5s"), 1500);
  assert.equal(parseDuration("d", 2), 2000);
  assert.throws(
    () => parseDuration("drain-timeout", "soon"),
    /'drain-timeout' must be a duration .* got "soon"/,
  );
});
