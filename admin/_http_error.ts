/**
 * Errors the admin API answers with a status of their own, and the JSON they are sent as.
 *
 * @module
 */

/** The body of every error answer. */
export interface ErrorBody {
  error: {
    status: number;
    message: string;
    /** The configuration key or header at fault, where there is one. */
    field?: string;
  };
}

/** An error with its HTTP status (and, for some, headers such as `Allow`). */
export class HttpError extends Error {
  override name = "HttpError";
  readonly status: number;
  readonly field: string | undefined;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    message: string,
    options: { field?: string; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.status = status;
    this.field = options.field;
    this.headers = options.headers ?? {};
  }

  /** The JSON body. */
  body(): ErrorBody {
    const error: ErrorBody["error"] = { status: this.status, message: this.message };
    if (this.field !== undefined) error.field = this.field;
    return { error };
  }
}

/**
 * The key an error message names, quoted as the configuration errors quote it:
 * `'max-line-bytes' must be ...`, `Unknown configuration key 'x'`.
 *
 * @param message An error message.
 * @returns The first quoted name, if any.
 */
export function fieldOf(message: string): string | undefined {
  return /'([^'\s]+)'/.exec(message)?.[1];
}
