/**
 * Reads the `--numbers` URL: `redis://HOST:PORT/DB?key=KEY` or `rediss://...` (TLS).
 *
 * The path is the database number, as every Redis client reads it (`redis://host/0`), and the
 * key that holds the high-water mark is the `key` parameter. The first form tallyho took,
 * `redis://HOST:PORT/KEY` (the path as the key, database 0), still works when no `key` parameter
 * is given, with a deprecation warning. A password in the URL is refused: a command line is
 * visible to every user of the host (`ps`), and a config file is shown by the admin API.
 *
 * @module
 */

import {
  type NumbersTarget,
  passwordInUrlError,
  refusePasswordInUrl,
  shownUpToHost,
} from "./numbers_url.ts";

const PASSWORD_GOES = "a file named by --numbers-password-file or in TALLYHO_REDIS_PASSWORD";

/** Where numbers are leased from, as given by a `redis://` or `rediss://` URL. */
export interface RedisTarget extends NumbersTarget {
  /** Host name or address (an IPv6 address without its brackets). */
  host: string;
  /** TCP port; 6379 when the URL names none. */
  port: number;
  /** The database number (`SELECT`); 0 unless the path names one. */
  database: number;
  /**
   * Set when the URL has the old form (the path as the key): what to tell the operator.
   * `null` for `redis://HOST:PORT/DB?key=KEY`.
   */
  deprecation: string | null;
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
 * @throws {RangeError} When it is not a `redis://HOST:PORT/DB?key=KEY` (or old
 * `redis://HOST:PORT/KEY`) URL or holds a password; the
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
  const keyParameter = url.searchParams.get("key");
  let key: string;
  let database = 0;
  let deprecation: string | null = null;
  if (keyParameter !== null) {
    key = keyParameter;
    if (key === "") throw new RangeError(`'numbers' ${shape}: got ${given}, whose key is empty`);
    if (path !== "") {
      if (!/^\d{1,5}$/.test(path)) {
        throw new RangeError(
          `'numbers' ${shape}, where DB is a database number: got ${given}, whose path ` +
            `${JSON.stringify(path)} is not a number (the key goes in ?key=)`,
        );
      }
      database = Number(path);
    }
  } else {
    key = path;
    if (key === "") {
      throw new RangeError(
        `'numbers' ${shape}: got ${given}, which names no key ` +
          `(?key= names the key that holds the high-water mark)`,
      );
    }
    deprecation = `--numbers ${url.protocol}//${url.host}/${url.pathname.slice(1)} takes the ` +
      `path as the key, which other Redis clients read as a database number; this form is ` +
      `deprecated: write ${url.protocol}//${url.host}/0?key=${
        encodeURIComponent(key)
      } (the same key, database 0)`;
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
    deprecation,
    username,
    display: `${tls ? "rediss" : "redis"}://${
      username === null ? "" : `${url.username}@`
    }${url.host}/${url.pathname.slice(1)}${url.search}`,
  };
}
