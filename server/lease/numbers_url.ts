/**
 * What every `--numbers` URL shares, whichever store it names (redis_url.ts, etcd_url.ts): the
 * parts a lease source needs from it, the refusal of a password written into it, and what an
 * error may echo of a value that did not parse.
 *
 * A command line is visible to every user of the host (`ps`) and a config file is shown by the
 * admin API, so a password never belongs in the URL, and no message may repeat one that was
 * typed there anyway: an error shows the scheme and the hosts, never what follows.
 *
 * @module
 */

/** The parts of a `--numbers` URL every store has. */
export interface NumbersTarget {
  /** `true` for the TLS scheme (`rediss://`, `etcds://`). */
  tls: boolean;
  /** The key that holds the high-water mark. */
  key: string;
  /** The user from the URL (`SCHEME://user@host/...`), or `null` for none. */
  username: string | null;
  /** The URL as logs and the admin API show it (it never holds a password). */
  display: string;
}

/**
 * The error for a password written into a `--numbers` URL.
 *
 * @param where Where the password goes instead, for the message.
 * @returns A RangeError whose message repeats none of the URL.
 */
export function passwordInUrlError(where: string): RangeError {
  return new RangeError(
    `'numbers' must not hold a password (it would show in ps and in the config): put it in ${where}`,
  );
}

/**
 * Refuses a URL with a password in its user part, before anything of it is parsed or echoed.
 *
 * @param text The URL as given.
 * @param where Where the password goes instead, for the message.
 * @throws {RangeError} {@linkcode passwordInUrlError} when the URL's user part holds a `:`.
 */
export function refusePasswordInUrl(text: string, where: string): void {
  if (/^[a-z]+:\/\/[^/@]*:[^/@]*@/i.test(text)) throw passwordInUrlError(where);
}

/**
 * What an error may show of a `--numbers` value that did not parse: its scheme and hosts, never
 * what follows. A password typed into the URL, even one whose `/` or `@` defeated the parse, or
 * one sent as a query or where a port goes, must not reach a log or a terminal.
 *
 * @param text The value as given.
 * @returns A quoted text safe to echo, ending in `…` where something was left out.
 *
 * @example
 * ```ts
 * shownUpToHost("redis://h:6379/k?password=x"); // '"redis://h:6379…"'
 * shownUpToHost("etcd://a:2379,b:2379/k"); // '"etcd://a:2379,b:2379…"'
 * ```
 */
export function shownUpToHost(text: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text);
  if (scheme === null) {
    // Not a URL at all (a typo such as `redis//`): shown only when it holds no user part.
    return text.includes("@")
      ? "a value that is not shown (it may hold a password)"
      : JSON.stringify(text);
  }
  const rest = text.slice(scheme[0].length);
  let authority = rest.split(/[/?#]/, 1)[0]!;
  const at = authority.lastIndexOf("@");
  if (at !== -1) authority = authority.slice(at + 1);
  else if (rest.includes("@")) authority = ""; // a user part with a '/' in it: no sure host
  // Member by member (etcd lists several), and a port only when it is digits: anything else
  // there may be a password. The first member that is not HOST[:PORT] ends what is shown.
  const shownMembers: string[] = [];
  for (const member of authority.split(",")) {
    const whole = /^(\[[^\]]*\]|[^:\[\]]*)(:\d*)?$/.exec(member)?.[0];
    if (whole !== undefined) {
      shownMembers.push(whole);
      continue;
    }
    shownMembers.push(/^(\[[^\]]*\]|[^:\[\]]*)/.exec(member)![0]);
    break;
  }
  const shown = `${scheme[0]}${shownMembers.join(",")}`;
  return JSON.stringify(shown.length < text.length ? `${shown}…` : shown);
}
