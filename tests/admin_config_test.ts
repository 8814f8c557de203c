/**
 * The admin API's configuration rules without HTTP: RFC 7396 merge patch and the one shared
 * check every backend applies.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RESTART_KEYS } from "../admin/patch_request.ts";
import { planConfigChange } from "./_patch_plan.ts";
import { applyMergePatch } from "../admin/merge_patch.ts";
import { defaultConfig, FLAG_NAMES, resolveConfig } from "../server/config/resolve_config.ts";

// RFC 7396, appendix A, every example.
const RFC_EXAMPLES: Array<[unknown, unknown, unknown]> = [
  [{ a: "b" }, { a: "c" }, { a: "c" }],
  [{ a: "b" }, { b: "c" }, { a: "b", b: "c" }],
  [{ a: "b" }, { a: null }, {}],
  [{ a: "b", b: "c" }, { a: null }, { b: "c" }],
  [{ a: ["b"] }, { a: "c" }, { a: "c" }],
  [{ a: "c" }, { a: ["b"] }, { a: ["b"] }],
  [{ a: { b: "c" } }, { a: { b: "d", c: null } }, { a: { b: "d" } }],
  [{ a: [{ b: "c" }] }, { a: [1] }, { a: [1] }],
  [["a", "b"], ["c", "d"], ["c", "d"]],
  [{ a: "b" }, ["c"], ["c"]],
  [{ a: "foo" }, null, null],
  [{ a: "foo" }, "bar", "bar"],
  [{ e: null }, { a: 1 }, { e: null, a: 1 }],
  [[1, 2], { a: "b", c: null }, { a: "b" }],
  [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
];

test("merge patch gives every result of RFC 7396's appendix A and modifies neither input", () => {
  for (const [target, patch, expected] of RFC_EXAMPLES) {
    const targetCopy = structuredClone(target);
    const patchCopy = structuredClone(patch);
    assert.deepEqual(applyMergePatch(target, patch), expected, JSON.stringify([target, patch]));
    assert.deepEqual(target, targetCopy);
    assert.deepEqual(patch, patchCopy);
  }
});

test("merge patch keeps a __proto__ member a member and pollutes no prototype", () => {
  const patched = applyMergePatch({}, JSON.parse('{"__proto__": {"polluted": true}}')) as Record<
    string,
    unknown
  >;
  assert.deepEqual(Object.keys(patched), ["__proto__"]);
  assert.equal(Object.getPrototypeOf(patched), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test("config plan lists only real changes; equal spellings of a value change nothing", () => {
  const defaults = defaultConfig(2);
  const current = resolveConfig({ port: 9000 }, defaults);
  const plan = planConfigChange(current, { "drain-timeout": "10000ms", port: 9000 }, defaults);
  assert.deepEqual(plan.changes, {});
  assert.deepEqual(plan.config, current);
  const change = planConfigChange(current, { "drain-timeout": 1.5 }, defaults);
  assert.deepEqual(change.changes, { "drain-timeout": { from: "10s", to: "1500ms" } });
  assert.equal(change.config.drainTimeoutMs, 1500);
});

test("config plan: restart-only keys are the listener's and the number source's, every other key is live", () => {
  assert.deepEqual([...RESTART_KEYS].sort(), [
    "first-number",
    "host",
    "numbers",
    "numbers-ca-file",
    "numbers-cert-file",
    "numbers-key-file",
    "numbers-password-file",
    "port",
    "state",
  ]);
  const defaults = defaultConfig(2);
  const current = resolveConfig({}, defaults);
  // A key added later (processes, limits) is live unless it is added to RESTART_KEYS.
  const values: Record<string, unknown> = {
    "drain-timeout": "1s",
    framing: "line",
    greeting: "G",
    "max-line-bytes": 9,
    "number-by": "message",
    threads: 7,
  };
  const live = Object.keys(values);
  for (const key of live) assert.ok(Object.values(FLAG_NAMES).includes(key), key);
  for (const key of live) {
    const plan = planConfigChange(current, { [key]: values[key] }, defaults);
    assert.deepEqual(Object.keys(plan.changes), [key]);
  }
  for (
    const [key, value] of [["host", "::"], ["port", 1], ["first-number", 2], [
      "state",
      "/tmp/s",
    ]] as const
  ) {
    assert.throws(() => planConfigChange(current, { [key]: value }, defaults), {
      name: "RestartRequiredError",
      message: new RegExp(`^'${key}' cannot change while the server runs; a restart is needed`),
    });
  }
});

test("config plan: null returns a key to the default it was given, not to the current value", () => {
  const defaults = { ...defaultConfig(2), greeting: "Default" };
  const current = resolveConfig({ greeting: "Now" }, defaults);
  const plan = planConfigChange(current, { greeting: null }, defaults);
  assert.equal(plan.config.greeting, "Default");
  assert.deepEqual(plan.changes, { greeting: { from: "Now", to: "Default" } });
});
