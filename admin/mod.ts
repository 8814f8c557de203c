/**
 * tallyho's admin API: a runtime-neutral Hono app over an {@linkcode AdminBackend}, its
 * Prometheus metrics and its bearer token.
 *
 * @module
 */

export * from "./app.ts";
export * from "./backend.ts";
export * from "./patch_request.ts";
export * from "./config_schema.ts";
export * from "./errors.ts";
export * from "./memory_backend.ts";
export * from "./merge_patch.ts";
export * from "./metrics.ts";
export * from "./process_metrics.ts";
export * from "./reply_rate.ts";
export * from "./stats_view.ts";
export * from "./token.ts";
