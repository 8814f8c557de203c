/**
 * tallyho's server: configuration, reply bytes, framing, the message handler and startServer.
 *
 * @module
 */

export * from "./common/mod.ts";
export * from "./config.ts";
export * from "./config_json.ts";
export * from "./reply_encoder.ts";
export * from "./line_scanner.ts";
export * from "./message_handler.ts";
export * from "./thread_stats.ts";
export * from "./serve.ts";
export { VERSION } from "./version.ts";
