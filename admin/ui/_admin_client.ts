/**
 * The page's calls to the admin API: same-origin `fetch` with the bearer token, and every
 * failure turned into an {@linkcode AdminError} that carries the API's status, message and field.
 *
 * @module
 */

/** A failed call: `status` 0 when the API could not be reached at all. */
export class AdminError extends Error {
  override name = "AdminError";
  readonly status: number;
  readonly field: string | undefined;

  constructor(status: number, message: string, field?: string) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

/** An answer: its JSON (null for none) and headers. */
export interface AdminAnswer<T> {
  status: number;
  body: T;
  headers: Headers;
}

/** Calls the admin API with one token. */
export class AdminClient {
  readonly #token: string;

  /** @param token The bearer token. */
  constructor(token: string) {
    this.#token = token;
  }

  /**
   * Calls an endpoint.
   *
   * @param path Relative to the page (`v1/stats`), so a proxy may serve it under a prefix.
   * @param init Method, headers and a JSON body.
   * @returns The answer, for a 2xx or 304.
   * @throws {AdminError} For anything else.
   */
  async call<T>(
    path: string,
    init: { method?: string; headers?: Record<string, string>; json?: unknown } = {},
  ): Promise<AdminAnswer<T>> {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${this.#token}`);
    const request: RequestInit = { method: init.method ?? "GET", headers, cache: "no-store" };
    if (init.json !== undefined) {
      headers.set("content-type", "application/json");
      request.body = JSON.stringify(init.json);
    }
    let response: Response;
    try {
      response = await fetch(path, request);
    } catch (error) {
      throw new AdminError(0, `Cannot reach the admin API: ${(error as Error).message}`);
    }
    const text = await response.text();
    let body: unknown = null;
    try {
      body = text === "" ? null : JSON.parse(text);
    } catch {
      // Not JSON: a proxy's page, say. The status says enough.
    }
    if (response.ok || response.status === 304) {
      return { status: response.status, body: body as T, headers: response.headers };
    }
    const error = (body as { error?: { message?: string; field?: string } } | null)?.error;
    throw new AdminError(
      response.status,
      error?.message ?? `The admin API answered ${response.status} ${response.statusText}`,
      error?.field,
    );
  }
}
