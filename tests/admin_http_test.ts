/**
 * The runtime's HTTP seam, serveHttp, over real HTTP on 127.0.0.1: the admin app as a client
 * meets it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createAdminApp } from "../admin/app.ts";
import { MemoryBackend } from "../admin/memory_backend.ts";
import { RUNTIME, runtime } from "../server/adapters/mod.ts";
import { AddressInUseError } from "../server/host/address_in_use_error.ts";
import type { HttpServer } from "../server/adapters/http_server.ts";
import { TOKEN } from "./_admin.ts";

function serveAdmin(backend = new MemoryBackend()): HttpServer {
  let server: HttpServer | undefined = undefined;
  const app = createAdminApp(backend, { token: TOKEN, port: () => server?.port ?? 0 });
  server = runtime.serveHttp(app.fetch, { hostname: "127.0.0.1", port: 0 });
  return server;
}

test("serveHttp serves the admin app on port 0 over real HTTP, then stops", async () => {
  const backend = new MemoryBackend();
  const server = serveAdmin(backend);
  try {
    assert.equal(server.runtime, RUNTIME);
    assert.ok(server.port > 0);
    const base = `http://127.0.0.1:${server.port}`;
    const live = await fetch(`${base}/livez`);
    assert.equal(live.status, 200);
    assert.deepEqual(await live.json(), { live: true });
    const denied = await fetch(`${base}/v1/info`);
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
    const auth = { authorization: `Bearer ${TOKEN}` };
    // fetch sends Host: 127.0.0.1:<port>, which the app accepts once it knows the bound port.
    const info = await fetch(`${base}/v1/info`, { headers: auth });
    assert.equal(info.status, 200);
    assert.equal((await info.json()).state, "running");
    const patched = await fetch(`${base}/v1/config`, {
      method: "PATCH",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ greeting: "Over HTTP" }),
    });
    assert.equal(patched.status, 200);
    assert.equal(patched.headers.get("etag"), '"2"');
    assert.equal((await patched.json()).greeting, "Over HTTP");
    assert.equal(backend.current.greeting, "Over HTTP");
    const big = await fetch(`${base}/v1/config`, {
      method: "PATCH",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ greeting: "x".repeat(100_000) }),
    });
    assert.equal(big.status, 413);
    await big.body?.cancel();
    assert.equal(backend.current.greeting, "Over HTTP");
    const metrics = await fetch(`${base}/metrics`, { headers: auth });
    assert.match(await metrics.text(), /^tallyho_build_info\{/m);
  } finally {
    await server.stop();
  }
  await assert.rejects(fetch(`http://127.0.0.1:${server.port}/livez`));
});

test("serveHttp reports a busy port as AddressInUseError naming the address", async () => {
  const server = serveAdmin();
  try {
    assert.throws(
      () =>
        runtime.serveHttp(() => new Response("no"), { hostname: "127.0.0.1", port: server.port }),
      (error: Error) => {
        assert.ok(error instanceof AddressInUseError);
        assert.equal(
          error.message,
          `Cannot serve HTTP on 127.0.0.1:${server.port}: the address is in use`,
        );
        return true;
      },
    );
  } finally {
    await server.stop();
  }
});

test("serveHttp answers a handler that throws with a bare 500 and no stack trace", async () => {
  const server = runtime.serveHttp(() => {
    throw new Error("secret internals");
  }, { hostname: "127.0.0.1", port: 0 });
  try {
    const response = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(response.status, 500);
    const text = await response.text();
    assert.doesNotMatch(text, /secret internals|at /);
  } finally {
    await server.stop();
  }
});
