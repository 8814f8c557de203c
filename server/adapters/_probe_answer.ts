/**
 * The capped admin relay's own answers: a probe's request head turned into a `Request` for the
 * handler, and the handler's `Response` into HTTP/1.1 bytes that close the connection after them.
 *
 * @module
 */

import { type FetchHandler, internalError } from "./http_server.ts";
import { headerOf, type RequestHead } from "./_request_head.ts";

const encoder = new TextEncoder();
const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/**
 * A response as HTTP/1.1 bytes, closing the connection after it.
 *
 * @param response The handler's response.
 * @param head Whether the request was `HEAD` (no body is sent).
 * @returns The bytes to write.
 */
export async function responseBytes(response: Response, head: boolean): Promise<Uint8Array> {
  const body = new Uint8Array(await response.arrayBuffer());
  let text = `HTTP/1.1 ${response.status} ${response.statusText || REASONS[response.status] || ""}`;
  response.headers.forEach((value, name) => {
    if (name === "content-length" || name === "transfer-encoding" || name === "connection") {
      return;
    }
    text += `\r\n${name}: ${value}`;
  });
  text += `\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  const start = encoder.encode(text);
  if (head || body.length === 0) return start;
  const bytes = new Uint8Array(start.length + body.length);
  bytes.set(start);
  bytes.set(body, start.length);
  return bytes;
}

/**
 * Makes the function that answers a probe with the handler.
 *
 * @param fetch The handler.
 * @param authority The `host:port` to use when the request has no `Host` header.
 * @returns The answer's bytes, for a head; a head the URL or `Headers` parser refuses, or a
 *   handler that throws, gets a bare 500.
 */
export function probeAnswerer(
  fetch: FetchHandler,
  authority: () => string,
): (head: RequestHead) => Promise<Uint8Array> {
  return async (head) => {
    let response: Response;
    try {
      const host = headerOf(head, "host") ?? authority();
      const request = new Request(`http://${host}${head.target}`, {
        method: head.method,
        headers: head.headers,
      });
      response = await fetch(request);
    } catch {
      response = internalError();
    }
    return responseBytes(response, head.method === "HEAD");
  };
}
