/**
 * Reads an etcd `--numbers` URL: `etcd://HOST:PORT[,HOST:PORT...]/KEY`, or `etcds://` for TLS.
 *
 * The authority lists the cluster's members (any of them answers; the source fails over between
 * them), which `new URL` cannot parse, so the URL is taken apart by hand. A password in the URL
 * is refused, as for Redis: a command line is visible to every user of the host (`ps`).
 *
 * @module
 */

import {
  type NumbersTarget,
  passwordInUrlError,
  refusePasswordInUrl,
  shownUpToHost,
} from "../../numbers_url.ts";

const PASSWORD_GOES = "a file named by --numbers-password-file";

/** One etcd member's client address. */
export interface EtcdMember {
  /** Host name or address (an IPv6 address without its brackets). */
  host: string;
  /** TCP port; 2379 when the URL names none. */
  port: number;
  /** The base URL the gateway answers on, `http://HOST:PORT` (or `https://`). */
  base: string;
}

/** Where numbers are leased from, as given by an `etcd://` or `etcds://` URL. */
export interface EtcdTarget extends NumbersTarget {
  /** The members, in the order given: the first is tried first. */
  members: EtcdMember[];
}

/** The port etcd serves clients on when a URL names none. */
const DEFAULT_ETCD_PORT = 2379;

/**
 * Whether `text` asks for etcd numbering at all (so an error can speak of an etcd URL).
 *
 * @param text What `--numbers` was given.
 * @returns `true` for `etcd://...` and `etcds://...`.
 */
export function isEtcdUrl(text: string): boolean {
  return /^etcds?:\/\//i.test(text);
}

/**
 * Parses an etcd `--numbers` URL.
 *
 * @param text The URL.
 * @returns Its parts.
 * @throws {RangeError} When it is not an `etcd://HOST:PORT[,HOST:PORT...]/KEY` URL or holds a
 * password; the message names the flag and what was given up to the hosts (never a password).
 *
 * @example
 * ```ts
 * parseEtcdUrl("etcd://10.0.0.5:2379,10.0.0.6:2379/tallyho").members.length; // 2
 * ```
 */
export function parseEtcdUrl(text: string): EtcdTarget {
  const shape = "must be etcd://HOST:PORT[,HOST:PORT...]/KEY or etcds://...";
  // Checked on the text before anything is parsed or echoed, so no message ever repeats it.
  refusePasswordInUrl(text, PASSWORD_GOES);
  const scheme = /^(etcds?):\/\//i.exec(text);
  if (scheme === null) throw new RangeError(`'numbers' ${shape}: got ${shownUpToHost(text)}`);
  const rest = text.slice(scheme[0].length);
  const slash = rest.indexOf("/");
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  let hosts = authority;
  let username: string | null = null;
  const at = authority.lastIndexOf("@");
  if (at !== -1) {
    const user = authority.slice(0, at);
    if (user.includes(":")) throw passwordInUrlError(PASSWORD_GOES);
    username = decodeURIComponent(user);
    hosts = authority.slice(at + 1);
  }
  const given = shownUpToHost(text);
  if (slash === -1 || rest.slice(slash + 1) === "") {
    throw new RangeError(
      `'numbers' ${shape}: got ${given}, which names no key ` +
        `(the path is the key that holds the high-water mark)`,
    );
  }
  const path = rest.slice(slash + 1);
  if (/[?#]/.test(path)) {
    throw new RangeError(`'numbers' ${shape} with nothing after the key: got ${given}`);
  }
  let key: string;
  try {
    key = decodeURIComponent(path);
  } catch {
    throw new RangeError(`'numbers' ${shape}: got ${given}, whose key is not valid %-encoding`);
  }
  const tls = scheme[1]!.toLowerCase() === "etcds";
  const members: EtcdMember[] = [];
  for (const part of hosts.split(",")) {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+)(?::(\d{1,5}))?$/.exec(part);
    const port = match?.[2] === undefined ? DEFAULT_ETCD_PORT : Number(match[2]);
    if (match === null || port < 1 || port > 65535) {
      // Echoed only up to a port that is not digits: what stands there may be a password.
      const safe = /^(\[[^\]]*\]|[^:\[\]]*)(:\d*)?$/.test(part)
        ? JSON.stringify(part)
        : `${
          JSON.stringify(/^(\[[^\]]*\]|[^:\[\]]*)/.exec(part)![0])
        } with a port that is not digits`;
      throw new RangeError(
        `'numbers' ${shape}: got ${given}, where ${safe} is not HOST or HOST:PORT`,
      );
    }
    const host = match[1]!.replace(/^\[(.*)\]$/, "$1");
    members.push({ host, port, base: `${tls ? "https" : "http"}://${match[1]}:${port}` });
  }
  return {
    tls,
    members,
    key,
    username,
    display: `${tls ? "etcds" : "etcd"}://${username === null ? "" : `${username}@`}${
      members.map((m) => m.base.replace(/^https?:\/\//, "")).join(",")
    }/${path}`,
  };
}
