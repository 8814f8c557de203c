/**
 * Reads a request's JSON body within the admin API's rules: at most {@linkcode MAX_BODY_BYTES},
 * `application/json` (or RFC 7396's `application/merge-patch+json`), UTF-8, well formed.
 *
 * @module
 */

import { jsonErrorPosition } from "../server/config/json_error_position.ts";
import { HttpError } from "./_http_error.ts";

/** The largest body the admin API reads. */
export const MAX_BODY_BYTES = 64 * 1024;

const JSON_TYPES = ["application/json", "application/merge-patch+json"];

function tooLarge(): HttpError {
  return new HttpError(413, `The request body must be at most ${MAX_BODY_BYTES} bytes`);
}

async function readCapped(request: Request): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > MAX_BODY_BYTES) throw tooLarge();
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > MAX_BODY_BYTES) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/**
 * Reads and parses the body.
 *
 * @param request The request.
 * @returns The parsed JSON, or `undefined` when the body is empty.
 * @throws {HttpError} 413 past the size cap, 415 for another media type, 400 for bytes that are
 *   not UTF-8 or not JSON.
 */
export async function readJsonBody(request: Request): Promise<unknown> {
  const contentType = request.headers.get("content-type");
  const mediaType = contentType === null
    ? undefined
    : contentType.split(";")[0]!.trim().toLowerCase();
  const isJson = mediaType !== undefined && JSON_TYPES.includes(mediaType);
  const wrongType = () =>
    new HttpError(
      415,
      `The request body must be sent as Content-Type: application/json: got ${
        contentType === null ? "no Content-Type" : JSON.stringify(contentType)
      }`,
      { field: "content-type" },
    );
  // Refused before a byte is read when the length is announced; otherwise once it is known.
  if (!isJson && Number(request.headers.get("content-length")) > 0) throw wrongType();
  const bytes = await readCapped(request);
  if (bytes.byteLength === 0) return undefined;
  if (!isJson) throw wrongType();
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, "The request body is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    // JavaScriptCore's messages (Bun) say no position; the same line and column on every runtime.
    const at = jsonErrorPosition(text);
    throw new HttpError(
      400,
      at === null
        ? `The request body is not valid JSON: ${(error as Error).message}`
        : `The request body is not valid JSON at line ${at.line}, column ${at.column}: ${at.problem}`,
    );
  }
}
