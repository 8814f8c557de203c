/**
 * The dashboard's files, embedded in the program: text imports put them in the module graph, so
 * `bun build --compile` carries them into the binary and nothing is read from disk or fetched at
 * run time. (Bun 1.4 and Deno 2.9 both read `with { type: "text" }` imports without a flag.)
 *
 * @module
 */

import indexHtml from "./index.html" with { type: "text" };
import iconSvg from "./icon.svg" with { type: "text" };
import dashboardJs from "./bundle/dashboard.js" with { type: "text" };
import dashboardCss from "./bundle/dashboard.css" with { type: "text" };

/** One file of the dashboard. */
export interface UiAsset {
  contentType: string;
  body: string;
}

/** The prefix the dashboard's files are served under; the page itself is at `/`. */
export const UI_PREFIX = "/ui/";

/**
 * The dashboard's Content-Security-Policy: its own script, style, icon and API calls and nothing
 * else (no inline script or style, no eval, no other origin), and no framing. `form-action
 * 'none'` keeps a form the script failed to handle from sending the token anywhere in a URL.
 */
export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Every file by path. */
export const UI_ASSETS: ReadonlyMap<string, UiAsset> = new Map([
  ["/", { contentType: "text/html; charset=utf-8", body: indexHtml }],
  [`${UI_PREFIX}dashboard.js`, {
    contentType: "text/javascript; charset=utf-8",
    body: dashboardJs,
  }],
  [`${UI_PREFIX}dashboard.css`, { contentType: "text/css; charset=utf-8", body: dashboardCss }],
  [`${UI_PREFIX}icon.svg`, { contentType: "image/svg+xml", body: iconSvg }],
]);

/**
 * Whether a path is the dashboard's (the page or under {@linkcode UI_PREFIX}): such paths need
 * no token, since they hold no data.
 *
 * @param path A request's path.
 * @returns True for `/` and `/ui/...`.
 */
export function isUiPath(path: string): boolean {
  return path === "/" || path.startsWith(UI_PREFIX);
}
