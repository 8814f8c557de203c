/**
 * The checks every admin request passes before it reaches an endpoint: the `Host` it was sent to
 * (DNS rebinding), where a browser sent it from (CSRF) and its bearer token.
 *
 * @module
 */

import { HttpError } from "./_http_error.ts";
import { bearerTokenMatcher, parseBearer } from "./token.ts";

/** What {@linkcode RequestGuard} checks against. */
export interface GuardOptions {
  token: string;
  hostname: string;
  port: () => number;
  allowedHosts: readonly string[];
}

function withPort(host: string, port: number): string {
  const bracketed = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `${bracketed.toLowerCase()}:${port}`;
}

/** Host, origin and token checks for one admin app. */
export class RequestGuard {
  readonly #tokenMatches: (authorization: string) => boolean;
  readonly #options: GuardOptions;
  #hostsPort = -1;
  #hosts = new Set<string>();

  constructor(options: GuardOptions) {
    this.#options = options;
    this.#tokenMatches = bearerTokenMatcher(options.token);
  }

  /** The `Host` values accepted: the admin address and loopback names, with the port. */
  hosts(): Set<string> {
    const port = this.#options.port();
    if (port !== this.#hostsPort) {
      const names = [this.#options.hostname, "localhost", "127.0.0.1", "::1"];
      const hosts = new Set(names.map((name) => withPort(name, port)));
      // Browsers and curl leave out the default port.
      if (port === 80) { for (const name of names) hosts.add(withPort(name, port).slice(0, -3)); }
      for (const host of this.#options.allowedHosts) {
        const name = host.toLowerCase();
        hosts.add(name);
        // A name given without a port is this API's on its own port (and as sent without one).
        if (!/:\d+$/.test(name) || name.endsWith("]")) hosts.add(`${name}:${port}`);
      }
      this.#hosts = hosts;
      this.#hostsPort = port;
    }
    return this.#hosts;
  }

  /**
   * Refuses a request addressed to a name that is not this API's: a page whose DNS name was
   * rebound to 127.0.0.1 sends its own name.
   *
   * @throws {HttpError} 400 without a `Host`, 403 for a foreign one.
   */
  checkHost(request: Request): void {
    const host = request.headers.get("host");
    if (host === null) {
      throw new HttpError(400, "The request has no Host header", { field: "host" });
    }
    if (!this.hosts().has(host.toLowerCase()) && !this.#ownNameWithoutPort(host)) {
      throw new HttpError(
        403,
        `Host ${JSON.stringify(host)} is not this admin API's address: use one of ${
          [...this.hosts()].join(", ")
        }`,
        { field: "host" },
      );
    }
  }

  /**
   * A `Host` of this API's own addresses without a port (`Host: 127.0.0.1`, as some scrapers and
   * probes send): an address literal names no DNS name that another site could rebind, so it is
   * as safe as the same address with the port. Names (`localhost`) still need the port, and
   * `Origin` is not checked this way: there no port means port 80, another server.
   */
  #ownNameWithoutPort(host: string): boolean {
    const name = host.toLowerCase();
    if (/:\d+$/.test(name) && !name.endsWith("]")) return false;
    const names = [this.#options.hostname, "127.0.0.1", "::1"].filter((own) =>
      /^[\d.]+$/.test(own) || own.includes(":")
    );
    return names.some((own) => {
      const bracketed = own.includes(":") && !own.startsWith("[") ? `[${own}]` : own;
      return bracketed.toLowerCase() === name;
    });
  }

  /**
   * Refuses what a browser sends on another site's behalf: a foreign or `null` `Origin`, or a
   * `Sec-Fetch-Site` other than `same-origin` or `none` (which also covers an `<img>` GET, which
   * carries no `Origin`).
   *
   * @throws {HttpError} 403.
   */
  checkOrigin(request: Request): void {
    const origin = request.headers.get("origin");
    if (origin !== null) {
      const match = /^https?:\/\/(.+)$/i.exec(origin);
      if (!match || !this.hosts().has(match[1]!.toLowerCase())) {
        throw new HttpError(
          403,
          `Requests from another origin are refused: got Origin ${JSON.stringify(origin)}`,
          { field: "origin" },
        );
      }
    }
    const site = request.headers.get("sec-fetch-site");
    if (site !== null && site !== "same-origin" && site !== "none") {
      throw new HttpError(
        403,
        `Requests from another site are refused: got Sec-Fetch-Site ${JSON.stringify(site)}`,
        { field: "sec-fetch-site" },
      );
    }
  }

  /**
   * Requires `Authorization: Bearer <token>`, compared in constant time.
   *
   * @throws {HttpError} 401 with `WWW-Authenticate: Bearer`.
   */
  checkToken(request: Request): void {
    const header = request.headers.get("authorization");
    const given = header === null ? null : parseBearer(header);
    const challenge = { headers: { "www-authenticate": 'Bearer realm="tallyho-admin"' } };
    if (given === null) {
      throw new HttpError(
        401,
        header === null
          ? "The request needs an Authorization: Bearer <token> header"
          : "The Authorization header must read Bearer <token>",
        { ...challenge, field: "authorization" },
      );
    }
    if (!this.#tokenMatches(header!)) {
      throw new HttpError(401, "The bearer token is wrong", {
        ...challenge,
        field: "authorization",
      });
    }
  }
}
