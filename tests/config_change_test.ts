/**
 * One way in for a configuration change: start-up, SIGHUP and PATCH /v1/config are planned by
 * the same function (validate, clamp to the host, diff), serialized, applied only when something
 * changed, logged once; a child that is starting when a change lands serves with it before it
 * acknowledges it.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { createAdminApp } from "../admin/app.ts";
import { MemoryBackend } from "../admin/memory_backend.ts";
import { defaultConfig, type ServeConfig } from "../server/config/resolve_config.ts";
import { ConfigKeeper } from "../server/config/config_keeper.ts";
import type { HostFacts } from "../server/host/host_facts.ts";
import { LineClient } from "./_client.ts";
import { adminFixture, errorOf, TOKEN } from "./_admin.ts";
import { startTallyho, tallyhoCommand, UNDER_TEST } from "./_server.ts";
import { sleep, waitUntil } from "./_wait.ts";

const HOST: HostFacts = { cores: 2, openFiles: 1024, memoryBytes: 4 * 1024 ** 3 };

function keeper(apply?: (next: ServeConfig, generation: number) => Promise<void> | void) {
  const lines: string[] = [];
  const defaults = defaultConfig(HOST);
  const kept = new ConfigKeeper(defaults, {
    defaults,
    host: HOST,
    log: (line) => lines.push(line),
    ...(apply ? { apply } : {}),
  });
  return { kept, lines };
}

test("config keeper: a change that asks for what is in force keeps the generation and logs nothing", async () => {
  const { kept, lines } = keeper();
  for (let i = 0; i < 3; i++) {
    const outcome = await kept.change(() => ({ greeting: "Hello World" }));
    assert.deepEqual(outcome.changes, {});
    assert.equal(outcome.generation, 1);
  }
  assert.equal(kept.generation, 1);
  assert.deepEqual(lines, []);
  const real = await kept.change(() => ({ greeting: "Hi" }));
  assert.equal(real.generation, 2);
  assert.deepEqual(lines, ['configuration generation 2: greeting "Hello World" -> "Hi"']);
});

test("config keeper: every route clamps resource keys to the host and says what it lowered", async () => {
  const { kept, lines } = keeper();
  const outcome = await kept.change(() => ({
    maxConnections: 5_000_000,
    threads: 256,
    processes: 64,
  }));
  assert.equal(outcome.config.maxConnections, HOST.openFiles - 256);
  assert.equal(outcome.config.threads, HOST.cores * 4);
  // 4 GiB: half of it at 64 MiB a thread is 32 threads, so 4 processes of 8.
  assert.equal(outcome.config.processes * outcome.config.threads, 32);
  assert.equal(outcome.warnings.length, 3);
  assert.match(
    outcome.warnings[0]!,
    /'max-connections' 5000000 .* using 768 \(open-file limit 1024/,
  );
  assert.match(outcome.warnings[1]!, /'threads' 256 .* using 8/);
  assert.match(outcome.warnings[2]!, /'processes' 64 x 'threads' 8 .* using 4 processes/);
  assert.equal(lines.length, 1, "one line for the change, warnings included");
  assert.match(
    lines[0]!,
    /^configuration generation 2: threads 2 -> 8, processes 1 -> 4, max-connections-per-address 192 -> 768; clamped/,
  );
  assert.match(lines[0]!, /clamped: 'max-connections' 5000000/);
  // Asking again for the same impossible value is no change once it is clamped.
  const again = await kept.change(() => ({
    maxConnections: 5_000_000,
    threads: 256,
    processes: 64,
  }));
  assert.deepEqual(again.changes, {});
  assert.equal(again.generation, 2);
});

test("config keeper: changes never interleave; each is planned on the one before it", async () => {
  let applying = 0;
  let overlapped = false;
  const applied: string[] = [];
  const { kept } = keeper(async (next) => {
    applying++;
    if (applying > 1) overlapped = true;
    await sleep(20);
    applied.push(next.greeting);
    applying--;
  });
  // Twenty changes at once, as SIGHUPs and PATCHes arriving together would be.
  const outcomes = await Promise.allSettled(
    Array.from(
      { length: 20 },
      (_, i) =>
        i % 2 === 0
          ? kept.change(() => ({ greeting: `sighup ${i}` }), { origin: "the config file" })
          // Each PATCH was read at generation 1; only the first to run may apply.
          : kept.change((current) => ({ ...current, greeting: `patch ${i}` }), { ifGeneration: 1 }),
    ),
  );
  assert.equal(overlapped, false, "two applies ran at once");
  assert.equal(outcomes[0]!.status, "fulfilled");
  const stale = outcomes.filter((o) => o.status === "rejected");
  assert.equal(
    stale.length,
    10,
    "every PATCH based on generation 1 after the first change is stale",
  );
  for (const o of stale) {
    assert.equal((o as PromiseRejectedResult).reason.name, "StaleGenerationError");
  }
  assert.equal(kept.generation, 11);
  assert.deepEqual(applied, Array.from({ length: 10 }, (_, i) => `sighup ${i * 2}`));
});

test("config keeper: a TypeError from a bug is never turned into the user's mistake", async () => {
  const { kept } = keeper();
  await assert.rejects(
    kept.change(() => {
      throw new TypeError("x is undefined");
    }),
    { name: "TypeError" },
  );
  // The admin API answers it as a bug: 500, with the cause in the log, not a 400 naming a field.
  const backend = new MemoryBackend();
  const lines: string[] = [];
  const broken = Object.assign(Object.create(backend), {
    applyConfig: () => {
      throw new TypeError("Cannot read properties of undefined (reading 'threads')");
    },
  });
  const app = createAdminApp(broken, { token: TOKEN, port: 9001, log: (l) => lines.push(l) });
  const response = await app.request("http://127.0.0.1:9001/v1/config", {
    method: "PATCH",
    headers: {
      host: "127.0.0.1:9001",
      authorization: `Bearer ${TOKEN}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({ greeting: "x" }),
  });
  assert.equal(response.status, 500);
  assert.doesNotMatch((await errorOf(response)).message, /threads/);
  assert.match(lines.join("\n"), /TypeError: Cannot read properties/);
});

test("admin PATCH clamps max-connections as the command line does, and says so", async () => {
  const { call, backend, lines } = adminFixture();
  const response = await call("/v1/config", {
    method: "PATCH",
    json: { "max-connections": 5_000_000 },
  });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body["max-connections"], 20_000 - 256);
  assert.equal(backend.current.maxConnections, 20_000 - 256);
  assert.match(response.headers.get("warning") ?? "", /^299 tallyho ".*'max-connections' 5000000/);
  const validate = await call("/v1/config/validate", {
    method: "POST",
    json: { "max-connections": 6_000_000, threads: 100, processes: 64 },
  });
  const planned = await validate.json();
  assert.equal(planned.config["max-connections"], 20_000 - 256);
  assert.equal(planned.config.threads, 8);
  assert.equal(planned.warnings.length, 3);
  assert.equal(lines.length, 0, "a clamp that changes nothing in force logs nothing");
});

test(`[${UNDER_TEST}] SIGHUP with an unchanged --config keeps the generation (and every ETag)`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-hup-"));
  const file = join(dir, "tallyho.json");
  writeFileSync(file, JSON.stringify({ greeting: "same ", threads: 1 }));
  const server = await startTallyho(["--config", file]);
  try {
    const before = await server.admin("/v1/config");
    assert.equal(before.headers.get("etag"), '"1"');
    await before.body?.cancel();
    for (let i = 0; i < 2; i++) {
      process.kill(server.pid, "SIGHUP");
      await server.waitFor(new RegExp(`(SIGHUP: .*generation 1 stays[^]*){${i + 1}}`));
    }
    const after = await server.admin("/v1/config");
    assert.equal(after.headers.get("etag"), '"1"', "a no-op SIGHUP moved the generation");
    await after.body?.cancel();
    assert.doesNotMatch(server.output(), /configuration generation 2/);
    // A file asking for more connections than the open-file limit allows is clamped, as at start.
    writeFileSync(file, JSON.stringify({ greeting: "same ", threads: 1, "max-connections": 9e6 }));
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(/clamped: 'max-connections' 9000000 is above what this process can hold/);
    const config = await (await server.admin("/v1/config")).json();
    assert.ok(config["max-connections"] < 9e6, `max-connections ${config["max-connections"]}`);
    // PATCH takes the same clamps: more threads x processes than the host holds, more
    // connections than the open-file limit; the response says what it lowered.
    const patched = await server.admin("/v1/config", {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ "max-connections": 5_000_000, threads: 256 }),
    });
    assert.equal(patched.status, 200);
    const body = await patched.json();
    assert.equal(body["max-connections"], config["max-connections"]);
    assert.ok(body.threads <= availableParallelism() * 4, `threads ${body.threads}`);
    assert.match(patched.headers.get("warning") ?? "", /'max-connections' 5000000/);
    assert.match(patched.headers.get("warning") ?? "", /'threads' 256/);
    const client = await LineClient.connect(server.port);
    try {
      assert.match(await client.request("hi\n"), /^same \d+$/, "still serving after the change");
    } finally {
      client.close();
    }
  } finally {
    assert.equal(await server.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A serving child driven over its stdin/stdout protocol, as the supervisor drives it. */
function childProcess() {
  const { cmd, argv, cwd } = tallyhoCommand(["_child"]);
  const child = spawn(cmd, argv, { cwd, stdio: ["pipe", "pipe", "inherit"] });
  const messages: Array<Record<string, unknown>> = [];
  let buffered = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const message = JSON.parse(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      messages.push(message);
      // Lease whatever is asked, as a memory source would.
      if (message.type === "lease") send({ type: "grant", id: message.id, first: 1 });
    }
  });
  const send = (message: unknown) => child.stdin!.write(`${JSON.stringify(message)}\n`);
  const waitFor = (match: (m: Record<string, unknown>) => boolean) =>
    waitUntil(() => messages.find(match), {
      what: () => `the message; got ${JSON.stringify(messages)}`,
      timeoutMs: 15_000,
      everyMs: 10,
    });
  return { child, messages, send, waitFor };
}

test(`[${UNDER_TEST}] a child that is starting when a change lands serves with it before it acknowledges`, async () => {
  for (let round = 0; round < 3; round++) {
    const { child, send, waitFor } = childProcess();
    try {
      const config = {
        ...defaultConfig(2),
        host: "127.0.0.1",
        port: 0,
        threads: 1,
        greeting: "old ",
      };
      send({ type: "start", index: 0, port: 0, config, generation: 1 });
      // Sent at once, while the child's threads are still starting.
      send({ type: "configure", id: 7, config: { ...config, greeting: "new " }, generation: 2 });
      const ack = await waitFor((m) => m.type === "ack" && m.id === 7);
      const listening = await waitFor((m) => m.type === "listening");
      assert.equal(ack.generation, 2, "the ack says which generation the child serves with");
      const client = await LineClient.connect(listening.port as number);
      try {
        assert.equal(await client.request("hi\n"), "new 1", "the child kept the old configuration");
      } finally {
        client.close();
      }
    } finally {
      send({ type: "drain" });
      child.stdin!.end();
      await new Promise((resolve) => child.once("exit", resolve));
    }
  }
});
