/**
 * The admin API's bearer token: where it comes from, and the rule that keeps a generated one off
 * the network.
 *
 * In order: the file named by `--admin-token-file`, then the `TALLYHO_ADMIN_TOKEN` environment
 * variable, then a file tallyho generates and keeps for the user, at the first of
 * `$RUNTIME_DIRECTORY/admin-token` (systemd sets it for a unit with `RuntimeDirectory=tallyho`:
 * `/run/tallyho/admin-token`), `$XDG_RUNTIME_DIR/tallyho/admin-token` (a desktop or ssh login
 * session), `$XDG_STATE_HOME/tallyho/admin-token`, by default
 * `~/.local/state/tallyho/admin-token` (root, containers, anything else;
 * `/root/.local/state/tallyho/admin-token` for root). `tallyho admin-token --path` prints it. A
 * generated token holds 32 random bytes in hex, sits in a directory of mode 0700 owned by the
 * user, has mode 0600, and is reused by the next start (delete the file to rotate it). The server
 * logs the file's path, never the token.
 *
 * Never in a directory that other users may write: one that anyone may write (such as /tmp)
 * would let another user create the name first (a link, a directory of theirs) and so stop the
 * server from starting, or hand it a token of their choosing. The directory the token's own
 * directory is made in must be writable only by the user and root, and each one above it owned by
 * the user or root (see server/host/private_directory.ts).
 *
 * @module
 */

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import {
  chmodSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { ConfigError } from "../server/common/config_error.ts";
import { fileErrorReason } from "../server/common/file_error.ts";
import { assertSafeDirectory } from "../server/host/private_directory.ts";

/** The environment variable that may hold the token. */
export const TOKEN_ENV = "TALLYHO_ADMIN_TOKEN";

/**
 * The fewest characters a configured token may have: 32 hex digits are 128 bits, out of reach
 * of guessing over HTTP. A generated token has 64.
 */
export const MIN_TOKEN_LENGTH = 32;

/** Options for {@linkcode resolveAdminToken} and {@linkcode assertAdminBindAllowed}. */
export interface AdminTokenOptions {
  /**
   * The file given with `--admin-token-file`; its content, without surrounding whitespace, is the
   * token.
   * @default {undefined: not given}
   */
  tokenFile?: string;
  /**
   * The environment to read {@linkcode TOKEN_ENV} from.
   * @default {process.env}
   */
  env?: Record<string, string | undefined>;
  /**
   * Where a generated token is kept.
   * @default {defaultTokenPath(env)}
   */
  generatedPath?: string;
}

/** Where the token came from. */
export type TokenSource = "file" | "env" | "generated";

/** A resolved token. */
export interface AdminToken {
  /** The token. Never log it. */
  token: string;
  source: TokenSource;
  /** The file it was read from or written to; absent for `env`. Safe to log. */
  path?: string;
  /** Whether this call wrote a new generated token (as opposed to reusing the file's). */
  created: boolean;
  /**
   * For a `--admin-token-file` that other users can read: one line for the log saying so and
   * how to fix it. Absent otherwise.
   */
  warning?: string;
}

// RFC 6750's b64token is stricter; any visible ASCII keeps the header parseable and lets an
// operator use whatever their secret store produces.
const TOKEN_SYNTAX = /^[\x21-\x7e]+$/;
const GENERATED_SYNTAX = /^[0-9a-f]{64}$/;

/**
 * The default path of a generated token.
 *
 * @param env The environment.
 * @returns `$RUNTIME_DIRECTORY/admin-token` (a systemd unit's `RuntimeDirectory=`), else
 *   `$XDG_RUNTIME_DIR/tallyho/admin-token`, else `$XDG_STATE_HOME/tallyho/admin-token`
 *   (`$HOME/.local/state/tallyho/admin-token` by default).
 */
export function defaultTokenPath(env: Record<string, string | undefined> = process.env): string {
  // systemd may list several directories, separated by colons; the first is ours.
  const unitDir = env.RUNTIME_DIRECTORY?.split(":")[0];
  if (unitDir) return join(unitDir, "admin-token");
  const runtimeDir = env.XDG_RUNTIME_DIR;
  if (runtimeDir) return join(runtimeDir, "tallyho", "admin-token");
  // Not a shared temporary directory: anyone could create the name there first.
  const stateHome = env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local", "state");
  return join(stateHome, "tallyho", "admin-token");
}

function checkToken(token: string, where: string): string {
  if (token.length === 0) {
    throw new ConfigError("admin-token-file", `The admin token ${where} is empty`);
  }
  if (!TOKEN_SYNTAX.test(token)) {
    // Never echo the token: say only what is wrong with it.
    throw new ConfigError(
      "admin-token-file",
      `The admin token ${where} must be visible ASCII without spaces: it holds other characters`,
    );
  }
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new ConfigError(
      "admin-token-file",
      `The admin token ${where} is too short: it has ${token.length} characters, and at least ` +
        `${MIN_TOKEN_LENGTH} are needed (such as 64 hex digits from: openssl rand -hex 32)`,
    );
  }
  return token;
}

// Warned, not refused: Kubernetes mounts secrets 0644 by default and Docker secrets are 0444,
// readable by all in a container whose only user is the server, and refusing would break them.
// On a shared host the warning says how to close the file.
function readableByOthers(path: string): string | undefined {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    return undefined;
  }
  if ((mode & 0o044) === 0) return undefined;
  return `the admin token file '${path}' can be read by other users (mode 0${
    mode.toString(8)
  }): run chmod 600 '${path}'`;
}

function errorCode(error: unknown): string | undefined {
  return (error as { code?: string }).code;
}

// Only a directory that is ours, not a link and closed to others may hold the token, made where
// nobody else can create its name first.
function privateDirectory(dir: string): void {
  let existing = dirname(dir);
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  assertSafeDirectory(existing, "the admin token's parent directory", {
    field: "admin-token-file",
    exclusive: true,
    advice: `set XDG_RUNTIME_DIR or XDG_STATE_HOME to a directory only this user can write, or ` +
      `give --admin-token-file or ${TOKEN_ENV}`,
  });
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new ConfigError(
      "admin-token-file",
      `Cannot keep the admin token in '${dir}': ${fileErrorReason(error)}; ` +
        `set XDG_RUNTIME_DIR or XDG_STATE_HOME to a directory this user can write, or give ` +
        `--admin-token-file or ${TOKEN_ENV}`,
    );
  }
  const stat = lstatSync(dir);
  const uid = process.getuid?.();
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid)) {
    throw new ConfigError(
      "admin-token-file",
      `Cannot keep the admin token in '${dir}': it is not a directory owned by this user`,
    );
  }
  if ((stat.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

function reusable(path: string): string | undefined {
  let stat;
  try {
    stat = lstatSync(path);
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw error;
  }
  const uid = process.getuid?.();
  // A file others could have read is no longer secret: replace it.
  if (!stat.isFile() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o077) !== 0) {
    return undefined;
  }
  const token = readFileSync(path, "utf8").trim();
  return GENERATED_SYNTAX.test(token) ? token : undefined;
}

function generate(path: string): AdminToken {
  privateDirectory(dirname(path));
  const existing = reusable(path);
  if (existing !== undefined) {
    return { token: existing, source: "generated", path, created: false };
  }
  const token = randomBytes(32).toString("hex");
  const temporary = `${path}.${process.pid}.tmp`;
  // Left over by a crashed server of the same pid, in our own directory.
  rmSync(temporary, { force: true });
  writeFileSync(temporary, token + "\n", { mode: 0o600, flag: "wx" });
  chmodSync(temporary, 0o600);
  try {
    // link() never replaces: when two servers start at once, the first token written wins and
    // the other server reads it back.
    linkSync(temporary, path);
  } catch (error) {
    if (errorCode(error) !== "EEXIST") throw error;
    const winner = reusable(path);
    if (winner !== undefined) {
      rmSync(temporary);
      return { token: winner, source: "generated", path, created: false };
    }
    // What is there is not a usable token file (wrong mode or content): replace it.
    renameSync(temporary, path);
    return { token, source: "generated", path, created: true };
  }
  rmSync(temporary);
  return { token, source: "generated", path, created: true };
}

/**
 * Resolves the admin token.
 *
 * @param options The token file, the environment and where to generate.
 * @returns The token, where it came from and, for a file, its path (log that, never the token).
 * @throws {ConfigError} When the token file cannot be read or a given token is empty, holds
 *   spaces or control characters, or is shorter than {@linkcode MIN_TOKEN_LENGTH}; the message
 *   names the file or variable, never the token.
 *
 * @example
 * ```ts
 * const { token, path } = resolveAdminToken({ tokenFile: args["admin-token-file"] });
 * if (path) log(`admin token in ${path}`);
 * ```
 */
export function resolveAdminToken(options: AdminTokenOptions = {}): AdminToken {
  const env = options.env ?? process.env;
  if (options.tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(options.tokenFile, "utf8");
    } catch (error) {
      throw new ConfigError(
        "admin-token-file",
        `Cannot read 'admin-token-file' '${options.tokenFile}': ${fileErrorReason(error)}`,
      );
    }
    const token = checkToken(text.trim(), `in '${options.tokenFile}'`);
    const warning = process.platform === "win32" ? undefined : readableByOthers(options.tokenFile);
    return {
      token,
      source: "file",
      path: options.tokenFile,
      created: false,
      ...(warning === undefined ? {} : { warning }),
    };
  }
  const fromEnv = env[TOKEN_ENV];
  if (fromEnv !== undefined) {
    return { token: checkToken(fromEnv.trim(), `in ${TOKEN_ENV}`), source: "env", created: false };
  }
  return generate(options.generatedPath ?? defaultTokenPath(env));
}

/**
 * Whether an address only reaches this machine: `localhost`, 127.0.0.0/8 or `::1`.
 *
 * @param hostname An address or host name, IPv6 with or without brackets.
 * @returns `true` for a loopback address.
 */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return host === "localhost" || host === "::1" || /^127(\.\d{1,3}){3}$/.test(host) ||
    /^::ffff:127(\.\d{1,3}){3}$/.test(host);
}

/**
 * Refuses to serve the admin API beyond this machine with a token nobody configured: a generated
 * token is for local use, read from a file on this machine.
 *
 * @param hostname The admin API's bind address.
 * @param options The same options as {@linkcode resolveAdminToken}.
 * @throws {ConfigError} For a non-loopback address without `--admin-token-file` or
 *   `TALLYHO_ADMIN_TOKEN`; one line that names the address.
 */
export function assertAdminBindAllowed(hostname: string, options: AdminTokenOptions = {}): void {
  const env = options.env ?? process.env;
  if (isLoopback(hostname) || options.tokenFile !== undefined || env[TOKEN_ENV] !== undefined) {
    return;
  }
  throw new ConfigError(
    "admin",
    `Cannot serve the admin API on ${hostname} without a configured token: ` +
      `pass --admin-token-file or set ${TOKEN_ENV}, or bind it to 127.0.0.1`,
  );
}

/**
 * The token of an `Authorization: Bearer <token>` header's value.
 *
 * @param header The header's value.
 * @returns The token, or null when the value is not of that form.
 */
export function parseBearer(header: string): string | null {
  return /^Bearer +([\x21-\x7e]+) *$/i.exec(header)?.[1] ?? null;
}

/**
 * Makes the check of an `Authorization` header's value against the token, in constant time.
 *
 * @param token The admin token.
 * @returns Whether a header's value is `Bearer <token>`.
 */
export function bearerTokenMatcher(token: string): (authorization: string) => boolean {
  // Comparing digests of equal length lets timingSafeEqual run on tokens of any length, and
  // keeps the time independent of how much of a guess is right.
  const digest = (text: string) => createHash("sha256").update(text).digest();
  const expected = digest(token);
  return (authorization) => {
    const given = parseBearer(authorization);
    return given !== null && timingSafeEqual(digest(given), expected);
  };
}
