/**
 * The admin API's endpoints, driven with `app.request()` over the memory backend: what each
 * answers, and that nothing but an authorised, well-formed request changes anything.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createAdminApp } from "../admin/app.ts";
import { StateConflictError } from "../admin/errors.ts";
import { MemoryBackend } from "../admin/memory_backend.ts";
import { configToJson } from "../server/config/config_json.ts";
import { defaultConfig } from "../server/config/resolve_config.ts";
import { VERSION } from "../server/common/version.ts";
import { adminFixture, errorOf, figures, TOKEN } from "./_admin.ts";

/** Every endpoint that needs the token, with a request that succeeds once authorised. */
const PROTECTED: Array<[string, string, unknown?]> = [
  ["GET", "/metrics"],
  ["GET", "/v1/info"],
  ["GET", "/v1/stats"],
  ["GET", "/v1/config"],
  ["GET", "/v1/config/schema"],
  ["PATCH", "/v1/config", { greeting: "Hi" }],
  ["POST", "/v1/config/validate", { greeting: "Hi" }],
  ["POST", "/v1/listener/pause"],
  ["POST", "/v1/listener/resume"],
  ["POST", "/v1/drain"],
];

function snapshot(backend: MemoryBackend) {
  return { config: structuredClone(backend.current), generation: backend.generation };
}

test("admin livez and readyz answer without a token; readyz is 503 unless running", async () => {
  const { call, backend } = adminFixture();
  const bare = { headers: { authorization: null } };
  const live = await call("/livez", bare);
  assert.equal(live.status, 200);
  assert.deepEqual(await live.json(), { live: true });
  const ready = await call("/readyz", bare);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { ready: true, state: "running", numbersAvailable: true });
  backend.state = "paused";
  const paused = await call("/readyz", bare);
  assert.equal(paused.status, 503);
  assert.deepEqual(await paused.json(), { ready: false, state: "paused", numbersAvailable: true });
  backend.state = "draining";
  assert.equal((await call("/readyz", bare)).status, 503);
  // Running, but no number can be handed out (the number source is down and none is left).
  backend.state = "running";
  backend.numbersAvailable = false;
  const starved = await call("/readyz", bare);
  assert.equal(starved.status, 503);
  assert.deepEqual(await starved.json(), {
    ready: false,
    state: "running",
    numbersAvailable: false,
  });
  // A probe may name the pod's own address in Host.
  assert.equal((await call("/livez", { headers: { host: "10.1.2.3:9001" } })).status, 200);
});

test("admin every endpoint but the probes refuses a missing, malformed or wrong token", async () => {
  for (const [method, path, json] of PROTECTED) {
    const { call, backend, lines } = adminFixture();
    const before = snapshot(backend);
    for (
      const authorization of [null, `Basic ${btoa("admin:" + TOKEN)}`, "Bearer", "Bearer wrong"]
    ) {
      const response = await call(path, { method, json, headers: { authorization } });
      assert.equal(response.status, 401, `${method} ${path} with ${authorization}`);
      assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="tallyho-admin"');
      const error = await errorOf(response);
      assert.equal(error.field, "authorization");
      assert.ok(!error.message.includes(TOKEN));
    }
    // A token that differs only in its last character, or by a suffix, is still wrong.
    for (const wrong of [TOKEN.slice(0, -1) + "x", TOKEN + "x", TOKEN.slice(0, -1)]) {
      const response = await call(path, {
        method,
        json,
        headers: { authorization: `Bearer ${wrong}` },
      });
      assert.equal(response.status, 401);
    }
    assert.deepEqual(snapshot(backend), before, `${method} ${path} changed the configuration`);
    assert.equal(backend.state, "running");
    assert.deepEqual(lines, []);
    const ok = await call(path, { method, json });
    assert.ok(ok.status === 200 || ok.status === 202, `${method} ${path}: ${ok.status}`);
  }
});

test("admin accepts the scheme in any case and the token with surrounding spaces", async () => {
  const { call } = adminFixture();
  assert.equal(
    (await call("/v1/info", { headers: { authorization: `bearer ${TOKEN}` } })).status,
    200,
  );
  assert.equal(
    (await call("/v1/info", { headers: { authorization: `Bearer  ${TOKEN} ` } })).status,
    200,
  );
});

test("admin refuses a Host that is not its address (DNS rebinding) before any change", async () => {
  const { call, backend } = adminFixture();
  const before = snapshot(backend);
  for (
    const host of ["evil.example", "evil.example:9001", "127.0.0.1:9002", "localhost", "[::2]:9001"]
  ) {
    const response = await call("/v1/config", {
      method: "PATCH",
      json: { greeting: "pwned" },
      headers: { host },
    });
    assert.equal(response.status, 403, host);
    assert.equal((await errorOf(response)).field, "host");
  }
  const missing = await call("/v1/info", { headers: { host: null } });
  assert.equal(missing.status, 400);
  assert.equal((await errorOf(missing)).field, "host");
  assert.deepEqual(snapshot(backend), before);
  for (const host of ["127.0.0.1:9001", "localhost:9001", "LOCALHOST:9001", "[::1]:9001"]) {
    assert.equal((await call("/v1/info", { headers: { host } })).status, 200, host);
  }
  // Its own addresses without the port, as some scrapers and probes send them: no DNS name, so
  // nothing another site could rebind ('localhost' still needs the port, above).
  for (const host of ["127.0.0.1", "[::1]"]) {
    assert.equal((await call("/v1/info", { headers: { host } })).status, 200, host);
  }
  for (const host of ["evil.example", "127.0.0.2", "[::2]", "127.0.0.1:"]) {
    assert.equal((await call("/v1/info", { headers: { host } })).status, 403, host);
  }
  // An Origin without a port is port 80: another site there is still refused.
  const fromPort80 = await call("/v1/config", {
    method: "PATCH",
    json: { greeting: "pwned" },
    headers: { origin: "http://127.0.0.1" },
  });
  assert.equal(fromPort80.status, 403);
});

test("admin accepts the Host names given in allowedHosts and its own bind address", async () => {
  const { call } = adminFixture({ allowedHosts: ["admin.internal:9001"] });
  assert.equal((await call("/v1/info", { headers: { host: "admin.internal:9001" } })).status, 200);
  assert.equal((await call("/v1/info", { headers: { host: "admin.internal:9002" } })).status, 403);
  const app = createAdminApp(new MemoryBackend(), {
    token: TOKEN,
    hostname: "10.0.0.7",
    port: () => 4000,
  });
  const headers = { authorization: `Bearer ${TOKEN}` };
  for (const [host, status] of [["10.0.0.7:4000", 200], ["10.0.0.7:9001", 403]] as const) {
    const response = await app.request("http://10.0.0.7:4000/v1/info", {
      headers: { ...headers, host },
    });
    assert.equal(response.status, status, host);
  }
});

test("admin refuses a foreign or null Origin and cross-site fetches (CSRF)", async () => {
  const { call, backend, lines } = adminFixture();
  const before = snapshot(backend);
  // Envoy's <img src=".../quitquitquit">, Caddy's cross-origin POST /load, a sandboxed iframe.
  const attempts: Array<[string, string, Record<string, string>, unknown?]> = [
    ["PATCH", "/v1/config", { origin: "null" }, { greeting: "x" }],
    ["PATCH", "/v1/config", { origin: "http://evil.example" }, { greeting: "x" }],
    ["PATCH", "/v1/config", { origin: "http://127.0.0.1:9002" }, { greeting: "x" }],
    ["POST", "/v1/drain", { origin: "http://evil.example" }],
    ["POST", "/v1/drain", { "sec-fetch-site": "cross-site" }],
    ["POST", "/v1/listener/pause", { "sec-fetch-site": "same-site" }],
    ["GET", "/v1/info", { "sec-fetch-site": "cross-site", "sec-fetch-dest": "image" }],
    ["GET", "/readyz", { origin: "http://evil.example" }],
  ];
  for (const [method, path, headers, json] of attempts) {
    const response = await call(path, { method, json, headers });
    assert.equal(response.status, 403, `${method} ${path} ${JSON.stringify(headers)}`);
    const error = await errorOf(response);
    assert.match(error.field ?? "", /^(origin|sec-fetch-site)$/);
  }
  assert.deepEqual(snapshot(backend), before);
  assert.equal(backend.state, "running");
  assert.deepEqual(lines, []);
  const same = await call("/v1/config", {
    method: "PATCH",
    json: { greeting: "Same" },
    headers: { origin: "http://127.0.0.1:9001", "sec-fetch-site": "same-origin" },
  });
  assert.equal(same.status, 200);
});

test("admin sends no CORS headers, even to a preflight", async () => {
  const { call } = adminFixture();
  const responses = [
    await call("/v1/info", { headers: { origin: "http://127.0.0.1:9001" } }),
    await call("/v1/config", {
      method: "OPTIONS",
      headers: {
        origin: "http://127.0.0.1:9001",
        "access-control-request-method": "PATCH",
        authorization: null,
      },
    }),
    await call("/v1/config", { method: "OPTIONS" }),
    await call("/livez"),
  ];
  for (const response of responses) {
    const cors = [...response.headers.keys()].filter((name) => name.startsWith("access-control"));
    assert.deepEqual(cors, [], `${response.status}`);
  }
  assert.equal(responses[1]!.status, 401);
  assert.equal(responses[2]!.status, 405);
});

test("admin GET /v1/info reports version, runtime, pid, state, address and generation", async () => {
  const clock = { now: 1_000_000 };
  const { call, backend } = adminFixture({ clock, boundPort: 41234 });
  clock.now += 2500;
  const response = await call("/v1/info");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("cache-control"), "no-store");
  const info = await response.json();
  assert.equal(info.version, VERSION);
  assert.ok(info.runtime === "bun" || info.runtime === "deno");
  assert.equal(info.pid, backend.info().pid);
  assert.equal(info.uptimeSeconds, 2.5);
  assert.equal(info.state, "running");
  assert.deepEqual(info.listen, { host: "0.0.0.0", port: 41234 });
  assert.equal(info.configGeneration, 1);
  const head = await call("/v1/info", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
});

test("admin GET /v1/stats gives totals, per process and per thread, with replies per second", async () => {
  const clock = { now: 0 };
  const { call, backend } = adminFixture({ clock });
  const stats = (replies: number) => [
    {
      index: 0,
      pid: 100,
      threads: [
        figures({ connectionsAccepted: 5, connectionsActive: 2, replies, lastNumber: 40 }),
        figures({ connectionsAccepted: 3, replies: 10, bytesIn: 7, lastNumber: 42 }),
      ],
    },
    {
      index: 1,
      pid: 101,
      threads: [figures({ connectionsAccepted: 1, replies: 1, closedLineTooLong: 1 })],
    },
  ];
  backend.setStats(stats(100));
  const first = await (await call("/v1/stats")).json();
  assert.equal(first.totals.connectionsAccepted, 9);
  assert.equal(first.totals.connectionsActive, 2);
  assert.equal(first.totals.replies, 111);
  assert.equal(first.totals.bytesIn, 7);
  assert.equal(first.totals.closedLineTooLong, 1);
  assert.equal(first.totals.lastNumber, 42, "the largest, not the sum");
  assert.equal(first.totals.repliesPerSecond, 0, "no earlier read to compare with");
  assert.equal(first.processes.length, 2);
  assert.equal(first.processes[0].pid, 100);
  assert.equal(first.processes[0].totals.replies, 110);
  assert.equal(first.processes[0].threads[1].index, 1);
  assert.equal(first.processes[0].threads[1].lastNumber, 42);
  assert.equal(first.processes[1].index, 1);
  clock.now += 2000;
  backend.setStats(stats(300));
  const second = await (await call("/v1/stats")).json();
  assert.equal(second.processes[0].threads[0].repliesPerSecond, 100);
  assert.equal(second.processes[0].threads[1].repliesPerSecond, 0);
  assert.equal(second.totals.repliesPerSecond, 100);
});

test("admin GET /v1/config is the flag-named JSON with a generation ETag; If-None-Match 304", async () => {
  const { call, backend } = adminFixture();
  const response = await call("/v1/config");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("etag"), '"1"');
  assert.deepEqual(await response.json(), configToJson(backend.current));
  const cached = await call("/v1/config", { headers: { "if-none-match": '"1"' } });
  assert.equal(cached.status, 304);
  assert.equal(await cached.text(), "");
  assert.equal((await call("/v1/config", { headers: { "if-none-match": '"7"' } })).status, 200);
});

test("admin PATCH /v1/config applies live keys, bumps the generation once and logs the diff", async () => {
  const { call, backend, lines } = adminFixture();
  const patch = {
    greeting: "Hi",
    framing: "line",
    "number-by": "message",
    "max-line-bytes": 100,
    threads: 4,
    "drain-timeout": "2500ms",
  };
  const response = await call("/v1/config", { method: "PATCH", json: patch });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("etag"), '"2"');
  const body = await response.json();
  assert.deepEqual(body, { ...configToJson(defaultConfig(2)), port: 9000, ...patch });
  assert.equal(backend.generation, 2);
  assert.equal(backend.current.greeting, "Hi");
  assert.equal(backend.current.drainTimeoutMs, 2500);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /generation 2/);
  assert.match(lines[0]!, /greeting "Hello World" -> "Hi"/);
  assert.match(lines[0]!, /threads 2 -> 4/);
  assert.match(lines[0]!, /drain-timeout "10s" -> "2500ms"/);
  assert.ok(!lines[0]!.includes(TOKEN));
  // The same patch again changes nothing: no new generation, nothing logged.
  const again = await call("/v1/config", { method: "PATCH", json: patch });
  assert.equal(again.status, 200);
  assert.equal(again.headers.get("etag"), '"2"');
  assert.equal(lines.length, 1);
});

test("admin PATCH null puts a key back to its default (RFC 7396)", async () => {
  const { call, backend } = adminFixture({ config: { greeting: "Yo", maxLineBytes: 10 } });
  const response = await call("/v1/config", {
    method: "PATCH",
    json: { greeting: null, "max-line-bytes": null, threads: 3 },
  });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.greeting, "Hello World");
  assert.equal(body["max-line-bytes"], 65536);
  assert.equal(body.threads, 3);
  assert.equal(backend.current.greeting, "Hello World");
});

test("admin PATCH accepts application/merge-patch+json and a charset", async () => {
  const { call, backend } = adminFixture();
  for (const type of ["application/merge-patch+json", "application/json; charset=utf-8"]) {
    const response = await call("/v1/config", {
      method: "PATCH",
      json: { greeting: type },
      headers: { "content-type": type },
    });
    assert.equal(response.status, 200, type);
    assert.equal(backend.current.greeting, type);
  }
});

/** Bad requests to the two endpoints that take a patch, with the status and field expected. */
const BAD_PATCHES: Array<{
  what: string;
  call: { body?: BodyInit; json?: unknown; headers?: Record<string, string | null> };
  status: number;
  field?: string;
  message: RegExp;
}> = [
  {
    what: "malformed JSON",
    call: { body: '{"greeting": "x",}', headers: { "content-type": "application/json" } },
    status: 400,
    message: /not valid JSON at line 1, column 18: a trailing comma before '\}'/,
  },
  {
    what: "bytes that are not UTF-8",
    call: {
      body: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
      headers: { "content-type": "application/json" },
    },
    status: 400,
    message: /not valid UTF-8/,
  },
  {
    what: "an empty body",
    call: { body: "", headers: { "content-type": "application/json" } },
    status: 400,
    message: /needs a JSON body/,
  },
  {
    what: "an array",
    call: { json: [1] },
    status: 400,
    message: /must be a JSON object: got \[1\]/,
  },
  {
    what: "an unknown key",
    call: { json: { greeting: "x", numberBy: "message" } },
    status: 400,
    field: "numberBy",
    message: /^Unknown configuration key 'numberBy' \(did you mean 'number-by'\?\)$/,
  },
  {
    what: "an unknown key set to null",
    call: { json: { bogus: null } },
    status: 400,
    field: "bogus",
    message: /^Unknown configuration key 'bogus'$/,
  },
  {
    what: "a __proto__ key",
    call: {
      body: '{"__proto__": {"greeting": "x"}}',
      headers: { "content-type": "application/json" },
    },
    status: 400,
    field: "__proto__",
    message: /Unknown configuration key/,
  },
  {
    what: "a number out of range",
    call: { json: { greeting: "x", "max-line-bytes": 0 } },
    status: 422,
    field: "max-line-bytes",
    message: /^'max-line-bytes' must be an integer from 1 to 67108864: got 0$/,
  },
  {
    what: "too many threads",
    call: { json: { threads: 1000 } },
    status: 422,
    field: "threads",
    message: /'threads' must be an integer from 1 to 256: got 1000/,
  },
  {
    what: "a value of the wrong type",
    call: { json: { threads: "4" } },
    status: 422,
    field: "threads",
    message: /got "4"/,
  },
  {
    what: "a choice not offered",
    call: { json: { framing: "words" } },
    status: 422,
    field: "framing",
    message: /'framing' must be one of chunk, line: got "words"/,
  },
  {
    what: "a greeting with a line break",
    call: { json: { greeting: "a\nb" } },
    status: 422,
    field: "greeting",
    message: /line break/,
  },
  {
    what: "an unreadable duration",
    call: { json: { "drain-timeout": "soon" } },
    status: 422,
    field: "drain-timeout",
    message: /'drain-timeout' must be a duration/,
  },
  {
    what: "a new port",
    call: { json: { greeting: "x", port: 9100 } },
    status: 409,
    field: "port",
    message: /'port' cannot change while the server runs; a restart is needed: it is 9000, .* 9100/,
  },
  {
    what: "a new host",
    call: { json: { host: "127.0.0.1" } },
    status: 409,
    field: "host",
    message: /restart is needed/,
  },
  {
    what: "a new first number",
    call: { json: { "first-number": 5 } },
    status: 409,
    field: "first-number",
    message: /restart is needed/,
  },
  {
    what: "text/plain",
    call: { body: '{"greeting":"x"}', headers: { "content-type": "text/plain" } },
    status: 415,
    field: "content-type",
    message: /Content-Type: application\/json: got "text\/plain"/,
  },
  {
    what: "a form (what a cross-site HTML form posts)",
    call: {
      body: "greeting=x",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    },
    status: 415,
    field: "content-type",
    message: /x-www-form-urlencoded/,
  },
  {
    what: "no Content-Type",
    call: { body: new TextEncoder().encode('{"greeting":"x"}') },
    status: 415,
    field: "content-type",
    message: /got no Content-Type/,
  },
  {
    what: "a body over 64 KiB",
    call: { json: { greeting: "x".repeat(64 * 1024) } },
    status: 413,
    message: /at most 65536 bytes/,
  },
  {
    what: "a body over 64 KiB announced by Content-Length",
    call: {
      body: "{}",
      headers: { "content-type": "application/json", "content-length": String(64 * 1024 + 1) },
    },
    status: 413,
    message: /at most 65536 bytes/,
  },
];

for (const path of ["/v1/config", "/v1/config/validate"]) {
  const method = path === "/v1/config" ? "PATCH" : "POST";
  test(`admin ${method} ${path} rejects every bad body and leaves the configuration as it was`, async () => {
    const { call, backend, lines } = adminFixture();
    const before = snapshot(backend);
    for (const bad of BAD_PATCHES) {
      const response = await call(path, { method, ...bad.call });
      assert.equal(response.status, bad.status, bad.what);
      const error = await errorOf(response);
      assert.match(error.message, bad.message, bad.what);
      assert.equal(error.field, bad.field, bad.what);
      assert.deepEqual(snapshot(backend), before, `${bad.what} changed the configuration`);
    }
    assert.deepEqual(lines, []);
  });
}

test("admin PATCH may repeat a restart-only key's current value (a GET document sent back)", async () => {
  const { call, backend } = adminFixture();
  const document = await (await call("/v1/config")).json();
  const response = await call("/v1/config", {
    method: "PATCH",
    json: { ...document, greeting: "Back" },
  });
  assert.equal(response.status, 200);
  assert.equal(backend.current.greeting, "Back");
  assert.equal(backend.current.port, 9000);
});

test("admin PATCH honours If-Match: the current ETag or * applies, a stale one is 412", async () => {
  const { call, backend, lines } = adminFixture();
  const first = await call("/v1/config", {
    method: "PATCH",
    json: { greeting: "One" },
    headers: { "if-match": '"1"' },
  });
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("etag"), '"2"');
  const before = snapshot(backend);
  for (const ifMatch of ['"1"', 'W/"2"', '"3"', "2", '"1", "3"']) {
    const stale = await call("/v1/config", {
      method: "PATCH",
      json: { greeting: "Two" },
      headers: { "if-match": ifMatch },
    });
    assert.equal(stale.status, 412, ifMatch);
    const error = await errorOf(stale);
    assert.equal(error.field, "if-match");
    assert.match(error.message, /read it again/);
    assert.deepEqual(snapshot(backend), before, `If-Match ${ifMatch} changed the configuration`);
  }
  assert.equal(lines.length, 1);
  for (const ifMatch of ['"1", "2"', "*"]) {
    const response = await call("/v1/config", {
      method: "PATCH",
      json: { greeting: ifMatch },
      headers: { "if-match": ifMatch },
    });
    assert.equal(response.status, 200, ifMatch);
  }
  assert.equal(backend.generation, 4);
});

test("admin backend refuses a generation that moved between the app's check and the change", () => {
  const backend = new MemoryBackend();
  backend.applyConfig({ greeting: "moved" });
  assert.throws(() => backend.applyConfig({ greeting: "late" }, { ifGeneration: 1 }), {
    name: "StaleGenerationError",
  });
  assert.equal(backend.current.greeting, "moved");
});

test("admin POST /v1/config/validate reports the changes without applying them", async () => {
  const { call, backend, lines } = adminFixture();
  const response = await call("/v1/config/validate", {
    method: "POST",
    json: { greeting: "Maybe", threads: 2, "drain-timeout": "10000ms" },
  });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.valid, true);
  assert.equal(body.generation, 1);
  assert.equal(body.config.greeting, "Maybe");
  // threads and drain-timeout are already 2 and 10s: only the greeting changes.
  assert.deepEqual(body.changes, { greeting: { from: "Hello World", to: "Maybe" } });
  assert.equal(backend.current.greeting, "Hello World");
  assert.equal(backend.generation, 1);
  assert.deepEqual(lines, []);
});

test("admin pause, resume and drain move the listener's state; resume while draining is 409", async () => {
  const { call, backend, lines } = adminFixture();
  const paused = await call("/v1/listener/pause", { method: "POST" });
  assert.equal(paused.status, 200);
  assert.deepEqual(await paused.json(), { state: "paused" });
  assert.equal(backend.state, "paused");
  assert.equal((await call("/readyz")).status, 503);
  const resumed = await call("/v1/listener/resume", { method: "POST", json: {} });
  assert.equal(resumed.status, 200);
  assert.equal(backend.state, "running");
  const drain = await call("/v1/drain", { method: "POST" });
  assert.equal(drain.status, 202);
  assert.deepEqual(await drain.json(), { state: "draining" });
  for (const action of ["/v1/listener/resume", "/v1/listener/pause"]) {
    const conflict = await call(action, { method: "POST" });
    assert.equal(conflict.status, 409);
    assert.match((await errorOf(conflict)).message, /draining/);
  }
  assert.equal(backend.state, "draining");
  assert.deepEqual(lines, [
    "admin: pause: listener paused",
    "admin: resume: listener running",
    "admin: drain: listener draining",
  ]);
});

test("admin listener actions hold an optional body to the same rules", async () => {
  const { call, backend } = adminFixture();
  const form = await call("/v1/drain", {
    method: "POST",
    body: "x=1",
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  assert.equal(form.status, 415);
  const malformed = await call("/v1/listener/pause", {
    method: "POST",
    body: "{",
    headers: { "content-type": "application/json" },
  });
  assert.equal(malformed.status, 400);
  assert.equal(backend.state, "running");
});

test("admin GET never changes anything; other methods on read paths get 405 with Allow", async () => {
  const { call, backend, lines } = adminFixture();
  const before = snapshot(backend);
  const cases: Array<[string, string, string]> = [
    ["GET", "/v1/drain", "POST"],
    ["GET", "/v1/listener/pause", "POST"],
    ["GET", "/v1/config/validate", "POST"],
    ["POST", "/v1/info", "GET, HEAD"],
    ["DELETE", "/v1/config", "GET, PATCH, HEAD"],
    ["PUT", "/v1/config", "GET, PATCH, HEAD"],
    ["POST", "/metrics", "GET, HEAD"],
    ["POST", "/v1/stats", "GET, HEAD"],
    ["POST", "/livez", "GET, HEAD"],
  ];
  for (const [method, path, allow] of cases) {
    const response = await call(path, { method, json: method === "GET" ? undefined : {} });
    assert.equal(response.status, 405, `${method} ${path}`);
    assert.equal(response.headers.get("allow"), allow);
    await errorOf(response);
  }
  assert.deepEqual(snapshot(backend), before);
  assert.equal(backend.state, "running");
  assert.deepEqual(lines, []);
});

test("admin unknown paths are 404 JSON once authorised, 401 before", async () => {
  const { call } = adminFixture();
  const found = await call("/v1/nothing");
  assert.equal(found.status, 404);
  assert.match((await errorOf(found)).message, /No endpoint at \/v1\/nothing/);
  assert.equal((await call("/v1/nothing", { headers: { authorization: null } })).status, 401);
});

test("admin GET /metrics serves the Prometheus text format", async () => {
  const { call, backend } = adminFixture();
  backend.setStats([{ index: 0, pid: 1, threads: [figures({ replies: 7 })] }]);
  const response = await call("/metrics");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const text = await response.text();
  assert.match(text, /^tallyho_replies_total\{process="0",thread="0"\} 7$/m);
  assert.match(text, /^tallyho_build_info\{version="[^"]+",runtime="(bun|deno)"\} 1$/m);
});

test("admin answers a backend failure with a bare 500 and logs the cause", async () => {
  const backend = new MemoryBackend();
  backend.info = () => {
    throw new Error("shared memory gone");
  };
  const { call, lines } = adminFixture({ backend });
  const response = await call("/v1/info");
  assert.equal(response.status, 500);
  const error = await errorOf(response);
  assert.doesNotMatch(error.message, /shared memory/);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /GET \/v1\/info failed: .*shared memory gone/);
  // A readiness probe that cannot read the state is not ready.
  assert.equal((await call("/readyz")).status, 500);
});

test("admin app refuses to be built without a token or a port", () => {
  const backend = new MemoryBackend();
  assert.throws(() => createAdminApp(backend, { token: "", port: 9001 }), {
    name: "TypeError",
    message: /non-empty 'token'/,
  });
  assert.throws(
    () => createAdminApp(backend, { token: "t" } as unknown as { token: string; port: number }),
    { name: "TypeError", message: /'port' .* got nothing/ },
  );
});

test("admin POST /v1/upgrade needs the token, answers 202 with the upgrade, 409 while one is under way, 501 where the server cannot upgrade", async () => {
  const plain = adminFixture();
  const unsupported = await plain.call("/v1/upgrade", { method: "POST" });
  assert.equal(unsupported.status, 501);
  let under = false;
  const backend = new MemoryBackend({ config: { port: 9000 } });
  const upgrading = Object.assign(backend, {
    upgrade() {
      if (under) throw new StateConflictError("Cannot upgrade: an upgrade to pid 42 is under way");
      under = true;
      return { state: "upgrading" as const, origin: "admin", at: 1, pid: 42, fromPid: 7 };
    },
  });
  const { call, lines } = adminFixture({ backend: upgrading });
  const bare = await call("/v1/upgrade", { method: "POST", headers: { authorization: null } });
  assert.equal(bare.status, 401);
  assert.equal(under, false, "nothing started without the token");
  const started = await call("/v1/upgrade", { method: "POST" });
  assert.equal(started.status, 202);
  assert.deepEqual(await started.json(), {
    state: "upgrading",
    origin: "admin",
    at: 1,
    pid: 42,
    fromPid: 7,
  });
  assert.ok(lines.some((line) => /upgrade: started a new supervisor \(pid 42\)/.test(line)));
  const again = await call("/v1/upgrade", { method: "POST" });
  assert.equal(again.status, 409);
  assert.match((await errorOf(again)).message, /under way/);
});
