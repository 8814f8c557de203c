/**
 * Reads the `--numbers` URL: `redis://HOST:PORT/DB?key=KEY` or `rediss://...` (TLS).
 *
 * The path is the database number, as every Redis client reads it (`redis://host/0`), and the
 * key that holds the high-water mark is the `key` parameter, which is required: a URL without one
 * is refused (the form that read the path as the key was dropped before any release). A
 * password in the URL is refused: a command line is visible to every user of the host (`ps`),
 * and a config file is shown by the admin API.
 *
 * @module
 */

import {
  type NumbersTarget,
  passwordInUrlError,
  refusePasswordInUrl,
  shownUpToHost,
} from "../../numbers_url.ts";

const PASSWORD_GOES = "a file named by --numbers-password-file or in TALLYHO_REDIS_PASSWORD";

/** Where numbers are leased from, as given by a `redis://` or `rediss://` URL. */
export interface RedisTarget extends NumbersTarget {
  /** Host name or address (an IPv6 address without its brackets). */
  host: string;
  /** TCP port; 6379 when the URL names none. */
  port: number;
  /** The database number (`SELECT`); 0 unless the path names one. */
  database: number;
}

/** The port Redis listens on when a URL names none. */
export const DEFAULT_REDIS_PORT = 6379;

/**
 * Whether `text` asks for Redis numbering at all (so an error can speak of a Redis URL).
 *
 * @param text What `--numbers` was given.
 * @returns `true` for `redis://...` and `rediss://...`.
 */
function isRedisUrl(text: string): boolean {
  return /^rediss?:\/\//i.test(text);
}

/**
 * Parses a `--numbers` URL.
 *
 * @param text The URL.
 * @returns Its parts.
 * @throws {RangeError} When it is not a `redis://HOST:PORT/DB?key=KEY` URL or holds a password; the
 * message names the flag and what was given up to the host (never what follows, which may be a
 * password).
 *
 * @example
 * ```ts
 * parseRedisUrl("redis://10.0.0.5:6379/2?key=tallyho:numbers").key; // "tallyho:numbers"
 * ```
 */
export function parseRedisUrl(text: string): RedisTarget {
  const shape = "must be redis://HOST:PORT/DB?key=KEY or rediss://HOST:PORT/DB?key=KEY";
  // Checked on the text before anything is parsed or echoed, so no message ever repeats it.
  refusePasswordInUrl(text, PASSWORD_GOES);
  const given = shownUpToHost(text);
  if (!isRedisUrl(text)) {
    throw new RangeError(`'numbers' ${shape}: got ${given}`);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RangeError(`'numbers' ${shape}: got ${given}, which is not a URL`);
  }
  if (url.password !== "") throw passwordInUrlError(PASSWORD_GOES);
  if (url.hostname === "") {
    throw new RangeError(`'numbers' ${shape}: got ${given}, which names no host`);
  }
  const names = [...url.searchParams.keys()];
  if (url.hash !== "" || names.some((name) => name !== "key") || names.length > 1) {
    // Named without their values: a `password=` parameter must not reach a log.
    throw new RangeError(
      `'numbers' ${shape}, with nothing after the key but the one ?key= parameter: got ${given}`,
    );
  }
  const path = decodeURIComponent(url.pathname.slice(1));
  const key = url.searchParams.get("key");
  if (key === null) {
    throw new RangeError(
      `'numbers' ${shape}: got ${given}, which names no key (?key= names the key that holds ` +
        `the high-water mark; the path is the database number)`,
    );
  }
  if (key === "") throw new RangeError(`'numbers' ${shape}: got ${given}, whose key is empty`);
  let database = 0;
  if (path !== "") {
    if (!/^\d{1,5}$/.test(path)) {
      throw new RangeError(
        `'numbers' ${shape}, where DB is a database number: got ${given}, whose path ` +
          `${JSON.stringify(path)} is not a number (the key goes in ?key=)`,
      );
    }
    database = Number(path);
  }
  const tls = url.protocol.toLowerCase() === "rediss:";
  const port = url.port === "" ? DEFAULT_REDIS_PORT : Number(url.port);
  const username = url.username === "" ? null : decodeURIComponent(url.username);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  return {
    tls,
    host,
    port,
    key,
    database,
    username,
    display: `${tls ? "rediss" : "redis"}://${
      username === null ? "" : `${url.username}@`
    }${url.host}/${url.pathname.slice(1)}${url.search}`,
  };
}
