/**
 * `tallyho doctor`: checks a host's TCP settings for serving the internet.
 *
 * @module
 */

export * from "./diagnose.ts";
export * from "./capacity.ts";
export * from "./checks.ts";
export * from "./certificate_check.ts";
export * from "./read_sysctls.ts";
export * from "./read_open_files.ts";
export * from "./backlog_probe.ts";
export * from "./parse_ss_listen.ts";
export * from "./render.ts";
