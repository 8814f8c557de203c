/**
 * A million connections are allowed where the host can hold them: the plan's clamps leave 64
 * processes of one thread each at their open-file cap on this project's machine (2 cores,
 * 24 GiB, 20,000 open files a process), and lower them, saying why, where the host is smaller.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultConfig } from "../server/config/resolve_config.ts";
import { planConfig } from "../server/config/config_plan.ts";
import type { HostFacts } from "../server/host/host_facts.ts";

const MACHINE: HostFacts = { cores: 2, openFiles: 20_000, memoryBytes: 24 * 1024 ** 3 };

test("config unit: 64 processes x 1 thread at 19,744 connections each stand on a 2-core 24 GiB host: over a million", () => {
  const plan = planConfig({ processes: 64, threads: 1, maxConnectionsPerAddress: 0 }, {
    defaults: defaultConfig(MACHINE),
    host: MACHINE,
  });
  assert.deepEqual(plan.warnings, []);
  assert.equal(plan.config.processes, 64);
  assert.equal(plan.config.threads, 1);
  assert.equal(plan.config.maxConnections, 19_744);
  assert.ok(plan.config.processes * plan.config.maxConnections >= 1_000_000);
});

test("config unit: a host with too little memory for 64 serving threads gets fewer processes, with the reason", () => {
  const small: HostFacts = { ...MACHINE, memoryBytes: 4 * 1024 ** 3 };
  const plan = planConfig({ processes: 64, threads: 1 }, {
    defaults: defaultConfig(small),
    host: small,
  });
  assert.equal(plan.config.processes, 32);
  assert.match(plan.warnings.join("\n"), /'processes' 64 x 'threads' 1 is more serving threads/);
});
