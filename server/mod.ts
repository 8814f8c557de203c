/**
 * tallyho's server: configuration, reply bytes, framing, the message handler and startServer.
 *
 * @module
 */

export * from "./common/mod.ts";
export * from "./config/resolve_config.ts";
export * from "./config/config_json.ts";
export * from "./numbering/reply_encoder.ts";
export * from "./numbering/line_scanner.ts";
export * from "./numbering/message_handler.ts";
export * from "./threads/thread_stats.ts";
export * from "./start_server.ts";
export { VERSION } from "./common/version.ts";
