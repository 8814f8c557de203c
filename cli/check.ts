/**
 * `tallyho check [serve options]` (such as `tallyho check --config FILE`): everything `serve`
 * would check before it starts, without starting: the configuration planned and clamped to this
 * host as `serve` plans it, the admin settings and token file, that both addresses can be bound
 * now, and that the state file or the Redis or etcd key can be reached. Prints the resolved
 * configuration as JSON on stdout and exits 0, or one line naming the problem and exits 2, like
 * `nginx -t` and `caddy validate`.
 *
 * @module
 */

import { accessSync, constants, existsSync } from "node:fs";
import { runtime } from "../server/adapters/mod.ts";
import process from "node:process";
import { dirname } from "node:path";
import { resolveAdminToken, TOKEN_ENV } from "../admin/token.ts";
import { assertAdminBindAllowed, defaultTokenPath } from "../admin/token.ts";
import { AddressInUseError } from "../server/host/address_in_use_error.ts";
import { defaultConfig, type ServeConfig } from "../server/config/resolve_config.ts";
import { configToJson } from "../server/config/config_json.ts";
import { planConfig } from "../server/config/config_plan.ts";
import { readHostFacts } from "../server/host/host_facts.ts";
import { EtcdLeaseError } from "../server/lease/sources/etcd/etcd_lease_error.ts";
import { RedisLeaseError } from "../server/lease/sources/redis/redis_lease_error.ts";
import { RedisPasswordError } from "../server/lease/sources/redis/redis_password.ts";
import { StateFileError } from "../server/lease/sources/state_file/state_file.ts";
import { assertPrivateStateDirectory } from "../server/lease/sources/state_file/state_directory.ts";
import { openLeaseSource } from "../server/lease/open_lease_source.ts";
import { type CliIo, consoleIo, UsageError } from "./_io.ts";
import { fileErrorReason } from "../server/common/file_error.ts";
import {
  adminSettings,
  assertFree,
  parseAdminAddress,
  parseServeArgs,
  readServeFile,
  requested,
} from "./serve.ts";

/** The usage text printed by `tallyho check --help`. */
export function checkUsage(): string {
  return `Usage: tallyho check [--quiet] [serve options]   e.g. tallyho check --config /etc/tallyho.json

Checks what 'tallyho serve' with the same options would check before it starts, without
starting: every value, the config file, the admin settings and token file, that the server's and
the admin API's addresses can be bound now, and that the state file, Redis or etcd key can be
reached (with the etcd client certificate, if one is given).
Prints the resolved configuration (defaults, file, flags, clamped to this host) as JSON.
--quiet prints one line only, the verdict (with any warnings), for a service manager's journal.

Exit codes: 0 valid, 2 not (one line says what and where).`;
}

/**
 * Where the numbers would come from, checked without changing anything: a state file that
 * exists is locked, read and unlocked; a missing one needs a directory it can be created in.
 */
async function checkNumbers(config: ServeConfig, warnings: string[]): Promise<string> {
  if (config.state !== null && !existsSync(config.state)) {
    const dir = dirname(config.state);
    try {
      accessSync(dir, constants.W_OK);
    } catch (error) {
      throw new StateFileError(
        `State file ${config.state} cannot be created: ${dir}: ${fileErrorReason(error)}`,
      );
    }
    // The rule serve applies before it creates the file: no other user may write the directory.
    assertPrivateStateDirectory(config.state);
    return `state file ${config.state} (to be created, from ${config.firstNumber})`;
  }
  const source = await openLeaseSource(config, (line, level) => {
    // A warning serve would log (a client key others can read); the source's info lines are not.
    if (level === "warn") warnings.push(line);
  }, { runtime });
  try {
    return `${source.description}, next number ${source.next}`;
  } finally {
    await source.close();
  }
}

/**
 * Runs `tallyho check`.
 *
 * @param args The arguments after `check`: the same as `serve`'s.
 * @param io Where to write.
 * @returns 0 when everything checks out, 2 when not.
 */
export async function checkMain(args: string[], io: CliIo = consoleIo): Promise<number> {
  // check's own switch; every other flag is serve's.
  const quiet = args.includes("--quiet");
  const parsed = parseServeArgs(args.filter((arg) => arg !== "--quiet"));
  if (parsed === "help") {
    io.out(checkUsage());
    return 0;
  }
  if (parsed === "version") throw new UsageError("'tallyho check' takes no --version");
  const host = readHostFacts();
  const file = readServeFile(parsed);
  const { config, warnings: planned } = planConfig(requested(parsed, file), {
    defaults: defaultConfig(host),
    host,
    capabilities: runtime.capabilities,
  });
  const admin = adminSettings(parsed, file);
  const adminAddress = parseAdminAddress(admin.address);
  const tokenOptions = admin.tokenFile === undefined ? {} : { tokenFile: admin.tokenFile };
  let token = "none (admin off)";
  if (adminAddress) {
    assertAdminBindAllowed(adminAddress.hostname, tokenOptions);
    if (admin.tokenFile !== undefined) {
      resolveAdminToken(tokenOptions); // reads and checks it, without showing it
      token = `from ${admin.tokenFile}`;
    } else if (process.env[TOKEN_ENV] !== undefined) {
      resolveAdminToken({}); // checks the variable's value
      token = `from ${TOKEN_ENV}`;
    } else token = `generated into ${defaultTokenPath()} at start`;
  }
  try {
    await assertFree(config.host, config.port, { address: "--host", port: "--port" });
    if (adminAddress) {
      await assertFree(adminAddress.hostname, adminAddress.port, {
        address: "--admin",
        port: "--admin",
      });
    }
  } catch (error) {
    // A busy address is a failure to serve for 'serve' (exit 1); for a check it is the answer.
    if (error instanceof AddressInUseError) throw new UsageError(error.message);
    throw error;
  }
  const warnings = [...planned];
  let numbers: string;
  try {
    numbers = await checkNumbers(config, warnings);
  } catch (error) {
    if (
      error instanceof StateFileError || error instanceof RedisLeaseError ||
      error instanceof EtcdLeaseError || error instanceof RedisPasswordError
    ) {
      throw new UsageError(error.message);
    }
    throw error;
  }
  if (!quiet) { for (const warning of warnings) io.err(`tallyho check: warning: ${warning}`); }
  const addresses = adminAddress
    ? `${config.host}:${config.port} and the admin API's ${admin.address} can be bound`
    : `${config.host}:${config.port} can be bound (admin API off)`;
  const folded = quiet && warnings.length > 0 ? `; warnings: ${warnings.join("; ")}` : "";
  io.err(`tallyho check: ok: ${addresses}; numbers: ${numbers}; admin token: ${token}${folded}`);
  // Under systemd (ExecStartPre) the journal keeps all of it, at every start: one line is enough.
  if (quiet) return 0;
  io.out(JSON.stringify(
    {
      ...configToJson(config),
      admin: admin.address,
      ...(admin.tokenFile === undefined ? {} : { "admin-token-file": admin.tokenFile }),
    },
    null,
    2,
  ));
  return 0;
}
