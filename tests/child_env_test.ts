/**
 * Serving child processes do not inherit the secrets only the supervisor needs: the Redis
 * password and the admin token are in the supervisor's environment and in no child's.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { test } from "node:test";
import { TOKEN_ENV } from "../admin/token.ts";
import { PASSWORD_ENV } from "../server/lease/sources/redis/redis_password.ts";
import { CHILD_SECRET_ENV } from "../server/process/child_env.ts";
import { skipRedis, startRedis } from "./_redis.ts";
import { startTallyho, UNDER_TEST } from "./_server.ts";

function environ(pid: number): Map<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").filter((e) => e);
  return new Map(entries.map((entry) => {
    const eq = entry.indexOf("=");
    return [entry.slice(0, eq), entry.slice(eq + 1)];
  }));
}

test("child env: the list of stripped variables names the Redis password and the admin token", () => {
  assert.deepEqual([...CHILD_SECRET_ENV].sort(), [PASSWORD_ENV, TOKEN_ENV].sort());
});

test(
  `[${UNDER_TEST}] child env: serving processes lack TALLYHO_REDIS_PASSWORD and TALLYHO_ADMIN_TOKEN that the supervisor has`,
  { skip: skipRedis },
  async () => {
    const redis = await startRedis({ password: "pw-child-env" });
    const saved = process.env[PASSWORD_ENV];
    process.env[PASSWORD_ENV] = "pw-child-env"; // startTallyho passes its environment on
    try {
      const server = await startTallyho(["--processes", "2", "--numbers", redis.url("n")]);
      try {
        const supervisor = environ(server.pid);
        assert.equal(supervisor.get(PASSWORD_ENV), "pw-child-env");
        assert.ok(supervisor.get(TOKEN_ENV), "the supervisor was given the admin token");
        const children = [...server.childPids().values()];
        assert.equal(children.length, 2);
        for (const pid of children) {
          const child = environ(pid);
          assert.equal(child.has(PASSWORD_ENV), false, `process ${pid} has ${PASSWORD_ENV}`);
          assert.equal(child.has(TOKEN_ENV), false, `process ${pid} has ${TOKEN_ENV}`);
          assert.equal(child.get("PATH"), supervisor.get("PATH"), "the rest is passed on");
        }
        assert.equal(await server.stop(), 0, server.output());
      } finally {
        await server.stop("SIGKILL");
      }
    } finally {
      if (saved === undefined) delete process.env[PASSWORD_ENV];
      else process.env[PASSWORD_ENV] = saved;
      await redis.close();
    }
  },
);
