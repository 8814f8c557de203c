/**
 * The load generator: `tallyho load` and the pieces it is built from.
 *
 * @module
 */

export * from "./latency_histogram.ts";
export * from "./load_options.ts";
export * from "./load_report.ts";
export * from "./message_bytes.ts";
export * from "./reply_checker.ts";
export * from "./reply_parser.ts";
export * from "./run_load.ts";
export * from "./seen_numbers.ts";
