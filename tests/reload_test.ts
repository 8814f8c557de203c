/**
 * SIGHUP re-reads --config: a valid file is applied to every process, a bad one is refused and
 * the running configuration kept.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { LineClient } from "./_client.ts";
import { startTallyho, UNDER_TEST } from "./_server.ts";
import { waitUntil } from "./_wait.ts";

async function greetingSeen(port: number): Promise<string> {
  const client = await LineClient.connect(port);
  try {
    return (await client.request("hi\n")).replace(/\d+$/, "");
  } finally {
    client.close();
  }
}

test(`[${UNDER_TEST}] SIGHUP applies a valid --config to every process and refuses a bad one`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-reload-"));
  const file = join(dir, "tallyho.json");
  writeFileSync(file, JSON.stringify({ greeting: "first ", processes: 2, threads: 1 }));
  const server = await startTallyho(["--config", file]);
  try {
    assert.match(server.output(), /with 2 processes x 1 thread /, "the file's keys were used");
    assert.equal(await greetingSeen(server.port), "first ");

    writeFileSync(file, JSON.stringify({ greeting: "second ", processes: 2, threads: 2 }));
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(/configuration generation 2: .*greeting "first " -> "second "/);
    // Every process and thread: 40 fresh connections all see the new greeting.
    for (let i = 0; i < 40; i++) assert.equal(await greetingSeen(server.port), "second ");

    writeFileSync(file, JSON.stringify({ greeting: "third ", "max-line-bytes": 0 }));
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(
      /SIGHUP: configuration not applied, keeping generation 2: 'max-line-bytes' must be an integer from 1/,
    );
    writeFileSync(file, "{ not json");
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(
      /configuration not applied, keeping generation 2: Config file .* is not valid JSON/,
    );
    writeFileSync(file, JSON.stringify({ greeting: "fourth ", processes: 2, "first-number": 5 }));
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(
      /'first-number' cannot change while the server runs; a restart is needed: it is 1, the config file .* asks for 5/,
    );
    for (let i = 0; i < 10; i++) assert.equal(await greetingSeen(server.port), "second ");
  } finally {
    assert.equal(await server.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`[${UNDER_TEST}] a refused reload is visible: /metrics says the last reload failed and when, /v1/info says why, until one succeeds`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-reload-"));
  const file = join(dir, "tallyho.json");
  writeFileSync(file, JSON.stringify({ greeting: "first " }));
  const startedAt = Date.now();
  const server = await startTallyho(["--config", file]);
  const gauge = async (name: string): Promise<number | null> => {
    const text = await (await server.admin("/metrics")).text();
    const line = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
    return line === null ? null : Number(line[1]);
  };
  const reload = async () =>
    ((await (await server.admin("/v1/info")).json()) as { reload: Record<string, unknown> })
      .reload;
  try {
    assert.equal(await gauge("tallyho_config_last_reload_successful"), 1, "1 at start");
    const started = await gauge("tallyho_config_last_reload_success_timestamp_seconds");
    assert.ok(started !== null && started * 1000 >= startedAt - 1000, `start time ${started}`);
    assert.equal(await gauge("tallyho_config_last_reload_attempt_timestamp_seconds"), null);

    writeFileSync(file, "{ not json");
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(/configuration not applied, keeping generation 1/);
    assert.equal(await gauge("tallyho_config_last_reload_successful"), 0);
    const attempted = await gauge("tallyho_config_last_reload_attempt_timestamp_seconds");
    assert.ok(attempted !== null && attempted >= started!, `attempt ${attempted}`);
    assert.equal(await gauge("tallyho_config_last_reload_success_timestamp_seconds"), started);
    const refused = await reload();
    assert.equal(refused.successful, false);
    assert.match(String(refused.reason), /is not valid JSON/);

    writeFileSync(file, JSON.stringify({ greeting: "second " }));
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(/configuration generation 2: .*greeting "first " -> "second "/);
    await waitUntil(async () => (await gauge("tallyho_config_last_reload_successful")) === 1, {
      what: "the gauge back at 1",
    });
    const succeeded = await gauge("tallyho_config_last_reload_success_timestamp_seconds");
    assert.ok(succeeded !== null && succeeded >= attempted!, `success ${succeeded}`);
    assert.equal((await reload()).reason, undefined);
  } finally {
    assert.equal(await server.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  }
});
