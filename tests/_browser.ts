/**
 * Test fixture: Debian's chromium driven by playwright-core, opened on a real server's
 * dashboard. Off CI a missing chromium skips the browser tests; under CI (env CI set) they fail
 * and say why, since .ci/run installs it.
 *
 * @module
 */

import process from "node:process";
import { type Browser, chromium, type Page } from "playwright-core";
import { type StartOptions, startTallyho, type TestServer } from "./_server.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";

/** The browser the tests drive: Debian's package (`apt-get install chromium`). */
export const CHROMIUM = process.env.TALLYHO_CHROMIUM ?? "/usr/bin/chromium";

/** Why the browser tests cannot run here, or null when they can. */
export const browserUnavailable: string | null = toolMissing(CHROMIUM, "chromium") === null
  ? null
  : `no chromium at ${CHROMIUM} (apt-get install chromium, or set TALLYHO_CHROMIUM)`;

/** The `skip` option for a browser test: a reason off CI, never on CI (the test then fails). */
export const skipBrowser: string | false = skipOffCi(browserUnavailable);

/** A page with what it reported. */
export interface DashboardPage {
  browser: Browser;
  page: Page;
  /** Uncaught page errors and Content-Security-Policy refusals, as they were reported. */
  problems: string[];
  close(): Promise<void>;
}

/**
 * Opens the dashboard of `server` in a fresh headless chromium.
 *
 * @param server A server from `startTallyho`.
 * @param options The viewport and colour scheme.
 * @returns The page, on the sign-in form.
 */
export async function openDashboard(
  server: TestServer,
  options: { width?: number; height?: number; colorScheme?: "light" | "dark" } = {},
): Promise<DashboardPage> {
  if (browserUnavailable !== null) {
    throw new Error(`Cannot run the browser tests: ${browserUnavailable}; .ci/run installs it`);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // No sandbox: CI runs as root, where chromium's sandbox refuses to start. The rest keeps a
    // test run off the network (no component updates, no background fetches).
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
    ],
  });
  try {
    const context = await browser.newContext({
      viewport: { width: options.width ?? 1280, height: options.height ?? 800 },
      colorScheme: options.colorScheme ?? "light",
      deviceScaleFactor: 1,
    });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (/Content.Security.Policy|Refused to/i.test(message.text())) {
        problems.push(`console: ${message.text()}`);
      }
    });
    await page.goto(`${server.adminUrl}/`);
    await page.locator("#login-form").waitFor({ state: "visible", timeout: 10_000 });
    return { browser, page, problems, close: () => browser.close() };
  } catch (error) {
    await browser.close();
    throw error;
  }
}

/**
 * Starts a server, opens its dashboard and runs `body`; then checks that the page met no
 * Content-Security-Policy refusal and no script error, closes the browser and stops the server
 * (which must exit 0), whatever happened.
 *
 * @param args The server's arguments (see `startTallyho`).
 * @param body The test.
 * @param options How the server is started (`{ env: FAST_STATS }` for fast samples).
 */
export async function withDashboard(
  args: string[],
  body: (context: { server: TestServer; page: Page }) => Promise<void>,
  options: StartOptions = {},
): Promise<void> {
  const server = await startTallyho(args, options);
  let dashboard: DashboardPage | undefined;
  let failure: unknown = null;
  try {
    dashboard = await openDashboard(server);
    await body({ server, page: dashboard.page });
    if (dashboard.problems.length > 0) {
      throw new Error(`The page reported problems:\n${dashboard.problems.join("\n")}`);
    }
  } catch (error) {
    failure = error;
  }
  await dashboard?.close().catch(() => {});
  const code = await server.stop();
  if (failure !== null) throw failure;
  if (code !== 0) throw new Error(`The server exited with ${code}:\n${server.output()}`);
}

/**
 * Signs in with the keyboard only: the token field has the focus, Enter submits.
 *
 * @param page The dashboard, on its sign-in form.
 * @param token The token to type.
 */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.keyboard.type(token);
  await page.keyboard.press("Enter");
}

/**
 * Reads a number as the dashboard writes it: `1,234`, `2.5`, `250k`, `3.5M`.
 *
 * @param text A tile's text.
 * @returns The number (NaN for `–`).
 */
export function readShown(text: string | null): number {
  const match = /^([\d,.]+)([kM]?)$/.exec((text ?? "").trim());
  if (!match) return NaN;
  const scale = match[2] === "k" ? 1e3 : match[2] === "M" ? 1e6 : 1;
  return Number(match[1]!.replaceAll(",", "")) * scale;
}

/**
 * The width and height a PNG file declares.
 *
 * @param bytes The file.
 * @returns Pixels.
 */
export function pngSize(bytes: Uint8Array): { width: number; height: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) !== 0x89504e47) throw new Error("not a PNG file");
  return { width: view.getUint32(16), height: view.getUint32(20) };
}
