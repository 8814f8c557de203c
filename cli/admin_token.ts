/**
 * `tallyho admin-token [--path] [--admin-token-file FILE]`: prints the admin API's bearer token,
 * or with `--path` the file it is in, by the same rule the server uses (admin/token.ts), so no
 * one needs to know where `$XDG_RUNTIME_DIR` points, or whether it is set.
 *
 * @module
 */

import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { defaultTokenPath, TOKEN_ENV } from "../admin/token.ts";
import { fileErrorReason } from "../server/common/file_error.ts";
import { type CliIo, consoleIo, EXIT_FAILURE, usageErrorFrom } from "./_io.ts";

/** The usage text printed by `tallyho admin-token --help`. */
export function adminTokenUsage(): string {
  return `Usage: tallyho admin-token [--path] [--admin-token-file FILE]

Prints the admin API's bearer token, as the server on this machine (run by this user, with this
environment) reads or generated it; with --path, the file it is kept in. For example:
  curl -H "Authorization: Bearer $(tallyho admin-token)" http://127.0.0.1:9001/v1/stats

Where the server keeps a token it generates (without --admin-token-file or ${TOKEN_ENV}); when
this user's file is missing but ${UNIT_TOKEN_PATH} exists, that one is printed:
  $RUNTIME_DIRECTORY/admin-token         under systemd with RuntimeDirectory=tallyho
                                         (/run/tallyho/admin-token)
  $XDG_RUNTIME_DIR/tallyho/admin-token   in a login session that sets XDG_RUNTIME_DIR
  $XDG_STATE_HOME/tallyho/admin-token    otherwise, by default ~/.local/state/tallyho/admin-token
                                         (/root/.local/state/tallyho/admin-token for root)

Options:
  --path                    print the file's path, not the token
  --admin-token-file FILE   the file the server was given with --admin-token-file
  -h, --help                show this text

Exit codes: 0 printed, 1 no token there yet (start the server first), 2 bad command line.`;
}

const FLAGS = {
  path: { type: "boolean" },
  "admin-token-file": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Where the systemd unit in docs/ (`RuntimeDirectory=tallyho`) has the server keep it. */
export const UNIT_TOKEN_PATH = "/run/tallyho/admin-token";

/**
 * Runs `tallyho admin-token`.
 *
 * @param args The arguments after `admin-token`.
 * @param io Where to write.
 * @param env The environment the rule reads.
 * @param unitPath The systemd unit's token file, looked at when this user's has none: an
 *   operator's shell has no `RUNTIME_DIRECTORY`, which systemd sets only for the service.
 * @returns The exit code.
 */
export function adminTokenMain(
  args: string[],
  io: CliIo = consoleIo,
  env: Record<string, string | undefined> = process.env,
  unitPath: string = UNIT_TOKEN_PATH,
): number {
  let values;
  try {
    values = parseArgs({ args, options: FLAGS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw usageErrorFrom(error as Error, "admin-token", FLAGS);
  }
  if (values.help) {
    io.out(adminTokenUsage());
    return 0;
  }
  const given = values["admin-token-file"];
  const own = defaultTokenPath(env);
  const path = typeof given === "string"
    ? given
    : !existsSync(own) && existsSync(unitPath)
    ? unitPath
    : own;
  if (typeof given !== "string" && env[TOKEN_ENV] !== undefined) {
    io.err(
      `tallyho: note: ${TOKEN_ENV} is set here; a server started with it uses that token, ` +
        `not the file`,
    );
  }
  if (values.path) {
    io.out(path);
    return 0;
  }
  let token: string;
  try {
    token = readFileSync(path, "utf8").trim();
  } catch (error) {
    const code = (error as { code?: string }).code;
    io.err(
      code === "ENOENT"
        ? `tallyho: no admin token at ${path} yet: the server writes one there when it starts ` +
          `(or it was given --admin-token-file or ${TOKEN_ENV}; see 'tallyho admin-token --help')`
        : `tallyho: cannot read the admin token at ${path}: ${fileErrorReason(error)}` +
          (code === "EACCES" ? "; run as the user the server runs as, or with sudo" : ""),
    );
    return EXIT_FAILURE;
  }
  io.out(token);
  return 0;
}
