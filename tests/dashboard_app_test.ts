/**
 * The dashboard as the admin app serves it, driven with `app.request()`: its files need no token
 * but keep every other protection, carry a strict Content-Security-Policy, and the checked-in
 * bundle matches its sources. Also the configuration schema the page reads.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { configSchema } from "../admin/config_schema.ts";
import { UI_ASSETS } from "../admin/ui/assets.ts";
import { buildUi, BUNDLE_DIR } from "../admin/ui/build.ts";
import {
  CHOICES,
  DURATION_KEYS,
  FLAG_NAMES,
  LIMITS,
  RESTART_KEYS,
  type ServeOptions,
} from "../server/config/resolve_config.ts";
import { adminFixture, errorOf } from "./_admin.ts";

const FILES: Array<[string, RegExp]> = [
  ["/", /^text\/html; charset=utf-8$/],
  ["/ui/dashboard.js", /^text\/javascript; charset=utf-8$/],
  ["/ui/dashboard.css", /^text\/css; charset=utf-8$/],
  ["/ui/icon.svg", /^image\/svg\+xml$/],
];

function cspDirectives(header: string | null): Map<string, string[]> {
  assert.ok(header, "no Content-Security-Policy header");
  return new Map(
    header.split(";").map((part) => {
      const [name, ...values] = part.trim().split(/\s+/);
      return [name!, values];
    }),
  );
}

test("dashboard page and files are served without a token, typed, with a strict CSP", async () => {
  const { call } = adminFixture();
  for (const [path, type] of FILES) {
    const response = await call(path, { headers: { authorization: null } });
    assert.equal(response.status, 200, path);
    assert.match(response.headers.get("content-type") ?? "", type, path);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    assert.equal(response.headers.get("x-frame-options"), "DENY");
    assert.equal(response.headers.get("access-control-allow-origin"), null);
    const csp = cspDirectives(response.headers.get("content-security-policy"));
    assert.deepEqual(csp.get("default-src"), ["'none'"]);
    assert.deepEqual(csp.get("script-src"), ["'self'"]);
    assert.deepEqual(csp.get("style-src"), ["'self'"]);
    assert.deepEqual(csp.get("connect-src"), ["'self'"]);
    assert.deepEqual(csp.get("frame-ancestors"), ["'none'"]);
    for (const values of csp.values()) {
      for (const value of values) {
        assert.doesNotMatch(value, /unsafe|\*|^https?:|^data:/, `${path}: ${value}`);
      }
    }
    assert.equal(await response.text(), UI_ASSETS.get(path)!.body);
  }
  // HEAD works as for every GET route.
  assert.equal((await call("/", { method: "HEAD", headers: { authorization: null } })).status, 200);
});

test("dashboard page has no inline script or style and names only files the app serves", async () => {
  const { call } = adminFixture();
  const html = await (await call("/")).text();
  // Every <script> has a src; no <style> element, no style or on* attribute, no javascript: URL.
  for (const tag of html.match(/<script\b[^>]*>/g) ?? []) assert.match(tag, /\bsrc="/);
  assert.doesNotMatch(html, /<style\b/i);
  assert.doesNotMatch(html, /\sstyle=|\son[a-z]+=|javascript:/i);
  const references = [...html.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
  assert.ok(references.length >= 3);
  for (const reference of references) {
    assert.match(reference, /^ui\//, `${reference} must be one of the page's own files`);
    const response = await call(`/${reference}`, { headers: { authorization: null } });
    assert.equal(response.status, 200, reference);
  }
  const js = await (await call("/ui/dashboard.js")).text();
  assert.doesNotMatch(js, /\beval\(|new Function\(/);
  // Nothing is fetched from elsewhere at run time.
  assert.doesNotMatch(js, /https?:\/\/(?!github\.com\/leeoniya)/);
});

test("dashboard files keep the Host and Origin checks; the JSON endpoints still need the token", async () => {
  const { call } = adminFixture();
  const bare = { authorization: null };
  const foreignHost = await call("/", { headers: { ...bare, host: "evil.example:9001" } });
  assert.equal(foreignHost.status, 403);
  assert.equal((await errorOf(foreignHost)).field, "host");
  const crossSite = await call("/ui/dashboard.js", {
    headers: { ...bare, "sec-fetch-site": "cross-site" },
  });
  assert.equal(crossSite.status, 403);
  const foreignOrigin = await call("/", { headers: { ...bare, origin: "http://evil.example" } });
  assert.equal(foreignOrigin.status, 403);
  // The page's own requests are same-origin.
  const sameOrigin = await call("/ui/dashboard.js", {
    headers: { ...bare, origin: "http://127.0.0.1:9001", "sec-fetch-site": "same-origin" },
  });
  assert.equal(sameOrigin.status, 200);
  for (const path of ["/v1/stats", "/v1/info", "/v1/config", "/v1/config/schema", "/metrics"]) {
    const response = await call(path, { headers: bare });
    assert.equal(response.status, 401, path);
    assert.equal(response.headers.get("content-security-policy"), null, path);
  }
  // Unknown files under the prefix are a plain 404; the page is read-only.
  assert.equal((await call("/ui/nothing.js", { headers: bare })).status, 404);
  const post = await call("/", { method: "POST", headers: bare });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
});

test("config schema gives every key its bounds, choices and liveness from server/config/resolve_config.ts", async () => {
  const { call } = adminFixture();
  const response = await call("/v1/config/schema");
  assert.equal(response.status, 200);
  const { keys } = await response.json() as ReturnType<typeof configSchema>;
  assert.deepEqual(Object.keys(keys), Object.values(FLAG_NAMES));
  for (const [option, flag] of Object.entries(FLAG_NAMES) as [keyof ServeOptions, string][]) {
    const key = keys[flag]!;
    assert.equal(key.live, !RESTART_KEYS.includes(option), flag);
    if (option in LIMITS) {
      const { min, max } = LIMITS[option as keyof typeof LIMITS];
      assert.deepEqual(
        key,
        DURATION_KEYS.has(option)
          ? { type: "duration", min, max, unit: "ms", live: key.live }
          : { type: "integer", min, max, live: key.live },
        flag,
      );
    } else if (option in CHOICES) {
      assert.deepEqual(key, {
        type: "choice",
        choices: CHOICES[option as keyof typeof CHOICES],
        live: true,
      });
    }
  }
  assert.deepEqual(keys.greeting, {
    type: "string",
    maxBytes: LIMITS.greetingBytes.max,
    live: true,
  });
  assert.deepEqual(keys.allow, { type: "cidr-list", live: true });
  assert.deepEqual(keys.state, { type: "path", nullable: true, live: false });
  assert.deepEqual(
    Object.keys(keys).filter((flag) => !keys[flag]!.live),
    [
      "host",
      "port",
      "first-number",
      "state",
      "numbers",
      "numbers-password-file",
      "numbers-ca-file",
      "numbers-cert-file",
      "numbers-key-file",
    ],
  );
});

test("dashboard bundle checked in under admin/ui/bundle is what build.ts makes from the sources", () => {
  const built = buildUi();
  for (const [name, text] of Object.entries(built)) {
    const checkedIn = readFileSync(join(BUNDLE_DIR, name), "utf8");
    assert.ok(
      checkedIn === text,
      `admin/ui/bundle/${name} is out of date with admin/ui/: run 'npm run build:ui' and commit it`,
    );
  }
  assert.equal(UI_ASSETS.get("/ui/dashboard.js")!.body, built["dashboard.js"]);
  assert.equal(UI_ASSETS.get("/ui/dashboard.css")!.body, built["dashboard.css"]);
});

test("dashboard sign-in says where the token is before any token is tried", async () => {
  const { call } = adminFixture();
  const page = await (await call("/", { headers: { authorization: null } })).text();
  const login = /<section id="login"[\s\S]*?<\/section>/.exec(page)?.[0] ?? "";
  assert.match(login, /<code>tallyho admin-token<\/code> prints it/);
  assert.match(login, /tallyho admin-token --path/);
  assert.match(login, /\/run\/tallyho\/admin-token/);
  assert.match(login, /\$XDG_RUNTIME_DIR\/tallyho\/admin-token/);
  assert.match(login, /~\/\.local\/state\/tallyho\/admin-token/);
  // Shown as the page loads: not an error paragraph that appears after a refusal.
  assert.doesNotMatch(/<p id="token-where"[^>]*>/.exec(login)?.[0] ?? "", /hidden/);
});
