/**
 * End to end: the real server (from source, or the compiled binary run from a temporary
 * directory) serves the dashboard's files over HTTP exactly as embedded, with nothing on disk.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { UI_ASSETS, UI_CSP } from "../admin/ui/assets.ts";
import { startTallyho, UNDER_TEST } from "./_server.ts";

test(`[${UNDER_TEST}] dashboard: the server serves the page and its files as embedded, no token`, async () => {
  const server = await startTallyho(["--threads", "1"]);
  try {
    for (const [path, asset] of UI_ASSETS) {
      const response = await fetch(`${server.adminUrl}${path}`);
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get("content-type"), asset.contentType, path);
      assert.equal(response.headers.get("content-security-policy"), UI_CSP, path);
      assert.equal(await response.text(), asset.body, path);
    }
    // The page's data still needs the token.
    assert.equal((await fetch(`${server.adminUrl}/v1/config/schema`)).status, 401);
    const schema = await server.admin("/v1/config/schema");
    assert.equal(schema.status, 200);
    assert.equal((await schema.json()).keys.greeting.live, true);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});
