/**
 * The default per-address cap: one address that floods and holds connections cannot lock out
 * another, with no limit set by the operator. Driven by Python's standard library under a low
 * open-file limit (`prlimit`), where the connection cap is small.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { planConfigChange } from "./_patch_plan.ts";
import { defaultConfig, resolveConfig } from "../server/config/resolve_config.ts";
import { defaultPerAddressCap } from "../server/config/host_sizing.ts";
import { python } from "./_python.ts";
import { startTallyho, UNDER_TEST } from "./_server.ts";

// Opens FLOOD connections from 127.0.0.2 and holds them (each sends a line first, so it counts
// only once admitted), then for SECONDS probes from 127.0.0.3 every 100 ms with a new connection.
const FLOOD_AND_PROBE = `
import json, socket, sys, time
port, flood, seconds = map(int, sys.argv[1:4])
def ask(source):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"hi\\n")
        buf = b""
        while not buf.endswith(b"\\n"):
            d = s.recv(256)
            if not d:
                break
            buf += d
        return s, buf.startswith(b"Hello World")
    except OSError:
        return s, False
held = []
served = 0
for _ in range(flood):
    s, ok = ask("127.0.0.2")
    if ok:
        served += 1
        held.append(s)
    else:
        s.close()
probes = failures = 0
deadline = time.time() + seconds
while time.time() < deadline:
    s, ok = ask("127.0.0.3")
    s.close()
    probes += 1
    failures += 0 if ok else 1
    time.sleep(0.1)
print(json.dumps({"flood_served": served, "probes": probes, "failures": failures}))
`;

test(`[${UNDER_TEST}] by default one address holding connections never locks out another (300 open files)`, async () => {
  const server = await startTallyho(["--threads", "2", "--framing", "line"], {
    wrap: ["prlimit", "--nofile=300"],
  });
  try {
    // 300 open files: a connection cap of 44 per process.
    await server.waitFor(/limits per process: 44 connections/);
    const result = await python(FLOOD_AND_PROBE, [String(server.port), "100", "3"], 60_000) as {
      flood_served: number;
      probes: number;
      failures: number;
    };
    assert.ok(result.probes >= 10, JSON.stringify(result));
    assert.equal(
      result.failures,
      0,
      `every probe from 127.0.0.3 served: ${JSON.stringify(result)}`,
    );
    assert.equal(result.flood_served, 11, "the flooding address holds a quarter of 44");
  } finally {
    await server.stop();
  }
});

test("the default per-address cap is a quarter of the connection cap and follows it until set", () => {
  const host = { cores: 2, openFiles: 300, memoryBytes: 4 * 1024 ** 3 };
  const defaults = defaultConfig(host);
  assert.equal(defaults.maxConnections, 44);
  assert.equal(defaults.maxConnectionsPerAddress, 11);
  assert.equal(defaultPerAddressCap(1, 1), 1, "never 0 (off)");
  const lowered = resolveConfig({ maxConnections: 100 }, defaults);
  assert.equal(lowered.maxConnectionsPerAddress, 25, "follows --max-connections");
  const spread = resolveConfig({ processes: 4 }, defaults);
  assert.equal(spread.maxConnectionsPerAddress, 44, "x processes: each allows a quarter of its 44");
  const patched = resolveConfig({ ...defaults, maxConnections: 20 }, defaults);
  assert.equal(patched.maxConnectionsPerAddress, 5, "a PATCH that passes the derived value back");
  assert.equal(
    resolveConfig({ maxConnectionsPerAddress: 0 }, defaults).maxConnectionsPerAddress,
    0,
  );
  assert.equal(
    resolveConfig({ maxConnections: 100, maxConnectionsPerAddress: 30 }, defaults)
      .maxConnectionsPerAddress,
    30,
    "an explicit value is kept",
  );
  // Live, through the admin API's planner: the first change follows, null derives it again.
  const first = planConfigChange(defaults, { "max-connections": 40 }, defaults).config;
  assert.equal(first.maxConnectionsPerAddress, 10);
  const second = planConfigChange(first, { "max-connections": 8 }, defaults).config;
  assert.equal(second.maxConnectionsPerAddress, 10, "kept: a second change does not follow");
  const reset = planConfigChange(
    first,
    { "max-connections": 8, "max-connections-per-address": null },
    defaults,
  ).config;
  assert.equal(reset.maxConnectionsPerAddress, 2, "null derives it again");
});
