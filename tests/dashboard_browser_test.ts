/**
 * The dashboard in a real browser (Debian's chromium, headless, driven by playwright-core)
 * against a real server: signing in, live charts under load, the configuration panel, the
 * listener's actions, narrow screens and dark mode. No Content-Security-Policy refusal and no
 * script error may happen on the way.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import type { Page } from "playwright-core";
import { LineClient } from "./_client.ts";
import { pngSize, readShown, signIn, skipBrowser, withDashboard } from "./_browser.ts";
import { startLoad } from "./_load.ts";
import { ADMIN_TOKEN, FAST_STATS, type TestServer, UNDER_TEST } from "./_server.ts";
import { sleep, waitUntil } from "./_wait.ts";

/**
 * Where the screenshots go: `TALLYHO_SCREENSHOT_DIR=docs` refreshes the README's; otherwise a
 * temporary folder, so a test run leaves the working tree alone.
 */
const SCREENSHOTS = process.env.TALLYHO_SCREENSHOT_DIR ??
  mkdtempSync(join(tmpdir(), "tallyho-screenshots-"));

/**
 * How long the load runs before and after the change, so the charts show both: only when the
 * README's pictures are made. Nothing asserted depends on it (each check waits for what it reads).
 */
const HOLD_MS = process.env.TALLYHO_SCREENSHOT_DIR ? 30_000 : 0;

/** How long a check of the page may take to hold, and how often it is asked. */
const PAGE = { timeoutMs: 20_000, everyMs: 100 };

/**
 * Resolves once the page has polled `/v1/stats` `count` more times (it polls once a second) and
 * drawn what it got: what a test waits for where it needs charts redrawn with fresh figures.
 */
async function afterPolls(page: Page, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await page.waitForResponse((response) => new URL(response.url()).pathname === "/v1/stats", {
      timeout: 10_000,
    });
  }
  // The page draws in the task that read the answer; a frame later it is on the screen.
  await page.evaluate("new Promise((resolve) => requestAnimationFrame(() => resolve(null)))");
}

// Code run in the page is passed as text where it names DOM globals: the tests are type-checked
// without the DOM library.

async function text(page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).textContent()) ?? "";
}

async function shown(page: Page, selector: string): Promise<number> {
  return readShown(await text(page, selector));
}

async function signedIn(page: Page): Promise<void> {
  await signIn(page, ADMIN_TOKEN);
  await page.locator("#dashboard").waitFor({ state: "visible", timeout: 10_000 });
  await waitUntil(async () => (await text(page, "#state")) === "running", {
    ...PAGE,
    what: "the state badge",
  });
  await page.locator("#field-greeting").waitFor({ state: "visible", timeout: 10_000 });
}

async function currentConfig(server: TestServer) {
  const response = await server.admin("/v1/config");
  return { etag: response.headers.get("etag"), config: await response.json() };
}

test(`[${UNDER_TEST}] dashboard in chromium: a wrong token shows why and no dashboard`, {
  skip: skipBrowser,
}, async () => {
  await withDashboard(["--threads", "1"], async ({ page }) => {
    // Where the token is, said before anything is tried.
    assert.match(
      await text(page, "#token-where"),
      /--admin-token-file[\s\S]*TALLYHO_ADMIN_TOKEN[\s\S]*start line/,
    );
    assert.equal(await page.locator("#token-where").isVisible(), true);
    await signIn(page, "not-the-token");
    const error = page.locator("#login-error");
    await error.waitFor({ state: "visible", timeout: 10_000 });
    assert.match(
      await error.textContent() ?? "",
      /refused this token \(The bearer token is wrong\)/,
    );
    assert.equal(await page.locator("#dashboard").isHidden(), true);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    // Then the right one, typed again: the dashboard opens, the token is kept for this tab only.
    await page.locator("#token").fill("");
    await signedIn(page);
    assert.equal(await page.locator("#login").isHidden(), true);
    assert.equal(
      await page.evaluate(() => sessionStorage.getItem("tallyho-admin-token")),
      ADMIN_TOKEN,
    );
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assert.match(await text(page, "#version"), /^tallyho \d+\.\d+\.\d+/);
    assert.match(await text(page, "#runtime"), /^(bun|deno) \d/);
    // A reload signs in from sessionStorage; "Forget token" forgets it.
    await page.reload();
    await page.locator("#dashboard").waitFor({ state: "visible", timeout: 10_000 });
    await page.locator("#sign-out").click();
    await page.locator("#login-form").waitFor({ state: "visible" });
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  });
});

test(
  `[${UNDER_TEST}] dashboard in chromium: under load the charts and counters rise; screenshots`,
  { skip: skipBrowser },
  async () => {
    await withDashboard(["--threads", "2"], async ({ server, page }) => {
      const load = startLoad(server.port, {
        clients: 8,
        maxRequests: 5_000_000,
        maxMs: 30_000 + 2 * HOLD_MS,
      });
      try {
        await signedIn(page);
        await waitUntil(async () => await shown(page, "#tile-replies") > 0, {
          ...PAGE,
          what: "replies/s above 0 in the tile",
        });
        await waitUntil(async () => await shown(page, "#tile-connections") > 0, {
          ...PAGE,
          what: "new connections/s above 0",
        });
        const chart = page.locator("#chart-replies");
        await waitUntil(async () => Number(await chart.getAttribute("data-peak")) > 0, {
          ...PAGE,
          what: "the replies/s chart to rise",
        });
        assert.match(
          await chart.getAttribute("aria-label") ?? "",
          /^Replies per second, last five/,
        );
        assert.equal(await page.locator("#chart-replies canvas").count(), 1);
        // The worst thread's event-loop delay is charted, in ms.
        assert.match(
          await page.locator("#chart-loop-delay").getAttribute("aria-label") ?? "",
          /^Longest event-loop delay, last five minutes: now \d[\d.,]* m?s, peak /,
        );
        // The server's closes by reason have a chart of their own.
        assert.equal(await page.locator("#chart-closed canvas").count(), 1);
        assert.match(
          await page.locator("#chart-closed").getAttribute("aria-label") ?? "",
          /^Connections closed per second, last five minutes: now /,
        );
        const firstNumber = await shown(page, "#tile-last-number");
        await waitUntil(async () => await shown(page, "#tile-last-number") > firstNumber, {
          ...PAGE,
          what: "the last number to rise",
        });
        // One process with two threads, each with its share of the accepted connections.
        await waitUntil(async () => {
          const shares = await page.locator("#processes tr:not(.process) td.share")
            .allTextContents();
          return shares.length === 2 && shares.every((share) => parseFloat(share) > 0);
        }, { ...PAGE, what: "both threads to have taken connections" });
        assert.match(
          await text(page, "#processes tr.process th"),
          /^process 0 pid \d+[\d.]+ MiB · CPU [\d.]+ s · up \d+s · 0 restarts$/,
        );
        assert.match(await text(page, "#numbers"), /^memory, last lease [\d.]+ m?s$/);
        // Event-loop delay: the worst thread in the tile, p99 / max for the process and each
        // thread in the table, in ms (or s) as measured.
        assert.match(await text(page, "#tile-loop-delay"), /^\d[\d.,]* m?s$/);
        const delays = await page.locator("#processes td.delay").allTextContents();
        assert.equal(delays.length, 3, `delay cells: ${delays}`);
        for (const cell of delays) assert.match(cell, /^\d[\d.,]* m?s \/ \d[\d.,]* m?s$/);
        await sleep(HOLD_MS);
        // A rate limit set in the panel: the load's new connections beyond it are refused, which
        // the rejections chart shows by reason, with the change marked on every chart.
        await page.locator("#field-connection-rate").fill("5");
        await page.locator("#apply").click();
        await waitUntil(
          async () => (await text(page, "#annotations")).includes("connection-rate 0 → 5"),
          { ...PAGE, what: "the change to be listed" },
        );
        await waitUntil(async () => await shown(page, "#tile-rejections") > 0, {
          ...PAGE,
          what: "rejections/s above 0",
        });
        assert.match(
          await page.locator("#tile-rejections").getAttribute("title") ?? "",
          /rate limit: (?!0\.0\/s)\d/,
        );
        assert.ok(Number(await page.locator("#chart-rejections").getAttribute("data-peak")) > 0);
        await sleep(HOLD_MS);
        mkdirSync(SCREENSHOTS, { recursive: true });
        await page.evaluate("scrollTo(0, 0)");
        // The processes table fits its panel, wide and (below) narrow: no column cut off.
        const tableFits = async () =>
          Boolean(
            await page.evaluate(
              "(() => { const s = document.querySelector('.table-scroll'); " +
                "return s.scrollWidth <= s.clientWidth; })()",
            ),
          );
        assert.equal(await tableFits(), true, "the processes table is cut off at 1280 px");
        const wide = join(SCREENSHOTS, "dashboard-wide.png");
        await page.screenshot({ path: wide });
        assert.deepEqual(pngSize(readFileSync(wide)), { width: 1280, height: 800 });
        await page.setViewportSize({ width: 390, height: 844 });
        // Narrow: one column, and nothing wider than the screen but the scrolling table.
        await waitUntil(
          async () => Number(await page.evaluate("document.documentElement.scrollWidth")) <= 390,
          { ...PAGE, what: "the charts to fit the narrow screen" },
        );
        await afterPolls(page, 2); // so the resized charts hold data
        assert.equal(
          await tableFits(),
          true,
          `the processes table is cut off at 390 px: ${await page.evaluate(
            "(() => { const s = document.querySelector('.table-scroll'); " +
              "return [s.scrollWidth, s.clientWidth, ...[...document.querySelectorAll('#processes tr.process > *')].map((c) => c.getBoundingClientRect().width)].join(' '); })()",
          )}`,
        );
        // No delay figure is broken inside ("1.5" / "ms"): the cell breaks at its slash only.
        const brokenFigures = await page.evaluate(
          "[...document.querySelectorAll('#processes td.delay span')]" +
            ".filter((span) => span.getClientRects().length !== 1).map((span) => span.textContent)",
        ) as string[];
        assert.deepEqual(brokenFigures, [], "delay figures broken over lines at 390 px");
        const narrow = join(SCREENSHOTS, "dashboard-narrow.png");
        await page.screenshot({ path: narrow });
        assert.deepEqual(pngSize(readFileSync(narrow)), { width: 390, height: 844 });
        // Dark mode follows the system's preference, charts included.
        const background = () =>
          page.evaluate("getComputedStyle(document.documentElement).backgroundColor");
        const light = await background();
        await page.emulateMedia({ colorScheme: "dark" });
        await page.setViewportSize({ width: 1280, height: 800 });
        assert.notEqual(await background(), light);
        await afterPolls(page, 1);
        await page.screenshot({ path: join(SCREENSHOTS, "dashboard-dark.png") });
      } finally {
        await load.stop();
      }
    });
  },
);

test(
  `[${UNDER_TEST}] dashboard in chromium: each process's memory, CPU and restarts are charted; the number source has its panel`,
  { skip: skipBrowser },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "tallyho-dashboard-state-"));
    try {
      const state = join(dir, "numbers.state");
      await withDashboard(
        ["--processes", "2", "--threads", "1", "--state", state],
        async ({ server, page }) => {
          const load = startLoad(server.port, {
            clients: 4,
            maxRequests: 2_000_000,
            maxMs: 30_000,
          });
          try {
            await signedIn(page);
            const label = (id: string) => page.locator(id).getAttribute("aria-label");
            // A line per process on each chart, drawn, and said in words.
            for (
              const id of ["#chart-process-memory", "#chart-process-cpu", "#chart-process-restarts"]
            ) {
              await waitUntil(
                async () => (await page.locator(id).getAttribute("data-processes")) === "0,1",
                { ...PAGE, what: `${id} to have both processes` },
              );
              assert.equal(await page.locator(`${id} canvas`).count(), 1, `${id} is drawn`);
            }
            // Each child reports its memory about once a second after it starts: until then the
            // label says "not reported yet", then it must give MiB for both.
            const memory =
              /^Resident memory per process, last five minutes: process 0 now [\d.]+ MiB, peak [\d.]+ MiB; process 1 now [\d.]+ MiB/;
            await waitUntil(async () => memory.test(await label("#chart-process-memory") ?? ""), {
              ...PAGE,
              what: "both processes' memory in the chart's label",
            });
            assert.match(await label("#chart-process-memory") ?? "", memory);
            // Under load each process uses CPU: its peak share is above 0.
            await waitUntil(async () => {
              const peaks = [...((await label("#chart-process-cpu")) ?? "").matchAll(
                /process \d now \d+ %, peak (\d+) %/g,
              )].map((m) => Number(m[1]));
              return peaks.length === 2 && peaks.every((peak) => peak > 0);
            }, { ...PAGE, what: "both processes' CPU on the chart" });
            assert.match(
              await label("#chart-process-restarts") ?? "",
              /process 0 now 0, peak 0; process 1 now 0, peak 0$/,
            );
            // The number source: a state file, its durable mark, and each process's leases.
            await waitUntil(
              async () => /written \d+s ago/.test(await text(page, "#source-facts")),
              { ...PAGE, what: "the durable mark to be written" },
            );
            const facts = await text(page, "#source-facts");
            assert.match(facts, /kindstate-file/);
            assert.match(facts, /reachableyes/);
            assert.match(facts, /durable mark[\d,]+ \(written/);
            const rows = page.locator("#source-processes tr");
            assert.equal(await rows.count(), 2);
            for (const row of await rows.all()) {
              const cells = await row.locator("th, td").allTextContents();
              assert.match(cells[0]!, /^process [01]$/);
              assert.ok(readShown(cells[1]!) >= 1, `leases: ${cells}`);
              assert.ok(readShown(cells[2]!) >= 1, `blocks: ${cells}`);
              assert.ok(readShown(cells[3]!) > 0, `numbers left: ${cells}`);
              assert.equal(cells[4], "0", `failed: ${cells}`);
              assert.match(cells[5]!, /^\d[\d.,]* m?s$/, `last lease: ${cells}`);
            }
            await sleep(HOLD_MS);
            // Process 1 killed: it comes back, and its restart steps up on the chart.
            const pid = server.childPids().get(1)!;
            process.kill(pid, "SIGKILL");
            await waitUntil(
              async () =>
                /process 1 now 1, peak 1$/.test(await label("#chart-process-restarts") ?? ""),
              { ...PAGE, what: "the restart on the chart" },
            );
            assert.match(await label("#chart-process-restarts") ?? "", /process 0 now 0, peak 0;/);
            await sleep(HOLD_MS / 2);
            mkdirSync(SCREENSHOTS, { recursive: true });
            await page.evaluate(
              "document.getElementById('chart-process-memory').closest('figure')" +
                ".scrollIntoView({ block: 'start' })",
            );
            const processes = join(SCREENSHOTS, "dashboard-processes.png");
            await page.screenshot({ path: processes });
            assert.deepEqual(pngSize(readFileSync(processes)), { width: 1280, height: 800 });
            await page.locator("#source-title").locator("..").screenshot({
              path: join(SCREENSHOTS, "dashboard-numbers.png"),
            });
            // At phone width the number source's table fits its panel too.
            await page.setViewportSize({ width: 390, height: 844 });
            await waitUntil(async () =>
              Boolean(
                await page.evaluate(
                  "(() => { const s = document.getElementById('source-processes')" +
                    ".closest('.table-scroll'); return s.scrollWidth <= s.clientWidth; })()",
                ),
              ), { ...PAGE, what: "the number source's table to fit 390 px", timeoutMs: 5000 });
          } finally {
            await load.stop();
          }
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(`[${UNDER_TEST}] dashboard in chromium: a greeting applied in the panel reaches TCP clients`, {
  skip: skipBrowser,
}, async () => {
  await withDashboard(["--threads", "2"], async ({ server, page }) => {
    await signedIn(page);
    const before = await currentConfig(server);
    // A switch is a choice of two, not a text box holding "false".
    assert.equal(await page.locator("select#field-proxy-protocol").inputValue(), "false");
    await page.locator("#field-greeting").fill("Howdy ");
    await page.locator("#validate").click();
    await waitUntil(
      async () =>
        (await text(page, "#config-status")).startsWith('Valid: greeting "Hello World" → "Howdy "'),
      { ...PAGE, what: "validation" },
    );
    // Validating changed nothing.
    assert.deepEqual(await currentConfig(server), before);
    await page.locator("#apply").click();
    await waitUntil(
      async () => (await text(page, "#config-status")).startsWith("Applied as generation 2"),
      { ...PAGE, what: "the change to apply" },
    );
    const client = await LineClient.connect(server.port);
    try {
      assert.match(await client.request("hi"), /^Howdy \d+$/);
    } finally {
      client.close();
    }
    assert.match(await text(page, "#annotations"), /gen 2: greeting "Hello World" → "Howdy "/);
    assert.equal(await page.locator("#field-greeting").inputValue(), "Howdy ");
    await waitUntil(async () => (await text(page, "#generation")) === "2", {
      ...PAGE,
      what: "the header's generation",
    });
  });
});

test(
  `[${UNDER_TEST}] dashboard in chromium: a bad value shows the server's error beside its field`,
  {
    skip: skipBrowser,
  },
  async () => {
    await withDashboard(["--threads", "1"], async ({ server, page }) => {
      await signedIn(page);
      const before = await currentConfig(server);
      const field = page.locator("#field-max-line-bytes");
      const error = page.locator("#error-max-line-bytes");
      for (const button of ["#validate", "#apply"]) {
        await field.fill("0");
        await page.locator(button).click();
        await error.waitFor({ state: "visible", timeout: 10_000 });
        assert.equal(
          await error.textContent(),
          "'max-line-bytes' must be an integer from 1 to 67108864: got 0",
        );
        assert.equal(await field.getAttribute("aria-invalid"), "true");
        // The field with the error has the focus, so a keyboard user lands on it.
        assert.equal(await page.evaluate("document.activeElement?.id"), "field-max-line-bytes");
        assert.deepEqual(
          await currentConfig(server),
          before,
          `${button} changed the configuration`,
        );
        // Typing again clears the message.
        await field.fill("4096");
        await error.waitFor({ state: "hidden" });
      }
      // Text where a number belongs is sent as typed: the server's own words come back.
      await field.fill("lots");
      await page.locator("#apply").click();
      await waitUntil(
        async () => (await text(page, "#error-max-line-bytes")).includes('got "lots"'),
        { ...PAGE, what: "the error for text" },
      );
      assert.deepEqual(await currentConfig(server), before);
    });
  },
);

test(
  `[${UNDER_TEST}] dashboard in chromium: a change made elsewhere first is reported, not overwritten`,
  {
    skip: skipBrowser,
  },
  async () => {
    await withDashboard(["--threads", "1"], async ({ server, page }) => {
      await signedIn(page);
      await page.locator("#field-greeting").fill("Mine ");
      // Someone else changes the configuration while the form is being edited.
      const other = await server.admin("/v1/config", {
        method: "PATCH",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ "idle-timeout": "30s" }),
      });
      assert.equal(other.status, 200);
      // The page notices the new generation within a poll or two and marks it on the charts.
      await waitUntil(async () =>
        (await text(page, "#annotations")).includes(
          'gen 2 (elsewhere): idle-timeout "60s" → "30s"',
        ), { ...PAGE, what: "the change elsewhere to be listed" });
      // The edit is kept; applying it is refused with 412 and said so.
      assert.equal(await page.locator("#field-greeting").inputValue(), "Mine ");
      await page.locator("#apply").click();
      await waitUntil(async () =>
        (await text(page, "#config-status")).includes(
          "someone else changed the configuration first",
        ), { ...PAGE, what: "the 412 message" });
      const { config } = await currentConfig(server);
      assert.equal(config.greeting, "Hello World");
      assert.equal(config["idle-timeout"], "30s");
      // The form now shows what is in force.
      assert.equal(await page.locator("#field-idle-timeout").inputValue(), "30s");
      assert.equal(await page.locator("#field-greeting").inputValue(), "Hello World");
    });
  },
);

test(
  `[${UNDER_TEST}] dashboard in chromium: a refused reload is shown beside the generation, in red, until one is applied`,
  {
    skip: skipBrowser,
  },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "tallyho-dash-reload-"));
    const file = join(dir, "tallyho.json");
    writeFileSync(file, JSON.stringify({ greeting: "first " }));
    try {
      await withDashboard(["--config", file], async ({ server, page }) => {
        await signedIn(page);
        assert.equal(await text(page, "#reload"), "", "nothing said before the first reload");
        writeFileSync(file, "{ not json");
        process.kill(server.pid, "SIGHUP");
        await waitUntil(
          async () => /refused: .*is not valid JSON/.test(await text(page, "#reload")),
          {
            ...PAGE,
            what: "the refused reload on the page",
          },
        );
        assert.equal(await page.locator("#reload.error").count(), 1, "shown as an error");
        assert.equal(await text(page, "#generation"), "1");
        writeFileSync(file, JSON.stringify({ greeting: "second " }));
        process.kill(server.pid, "SIGHUP");
        await waitUntil(async () => /applied$/.test(await text(page, "#reload")), {
          ...PAGE,
          what: "the applied reload on the page",
        });
        assert.equal(await page.locator("#reload.error").count(), 0);
        assert.equal(await text(page, "#generation"), "2");
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(`[${UNDER_TEST}] dashboard in chromium: pause, resume and drain each ask first`, {
  skip: skipBrowser,
}, async () => {
  await withDashboard(["--threads", "1"], async ({ server, page }) => {
    await signedIn(page);
    const dialog = page.locator("#confirm");
    const state = async () => (await (await server.admin("/v1/info")).json()).state;
    // Cancelled with Escape: nothing happens.
    await page.locator("#pause").click();
    await dialog.waitFor({ state: "visible" });
    assert.equal(await text(page, "#confirm-title"), "Pause the listener?");
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "hidden" });
    assert.equal(await state(), "running");
    // Confirmed: paused, and the page says so.
    await page.locator("#pause").click();
    await page.locator("#confirm-ok").click();
    await waitUntil(async () => (await text(page, "#state")) === "paused", {
      ...PAGE,
      what: "the badge to say paused",
    });
    assert.equal(await state(), "paused");
    assert.equal(await page.locator("#pause").isDisabled(), true);
    await page.locator("#resume").click();
    await page.locator("#confirm-ok").click();
    await waitUntil(async () => (await text(page, "#state")) === "running", {
      ...PAGE,
      what: "the badge to say running",
    });
    assert.equal(await state(), "running");
    // Drain stops the server: it exits 0, and the page says it cannot reach it rather than break.
    await page.locator("#drain").click();
    assert.match(await text(page, "#confirm-text"), /drain timeout \(10s\)/);
    await page.locator("#confirm-ok").click();
    assert.equal(await server.exited, 0);
    await waitUntil(
      async () => (await text(page, "#notice")).includes("Cannot reach the admin API"),
      { ...PAGE, what: "the page to say the API is gone" },
    );
  });
});

test(
  `[${UNDER_TEST}] dashboard in chromium: a page opened after the load shows it, from /v1/stats/history`,
  { skip: skipBrowser },
  async () => {
    await withDashboard(["--threads", "1"], async ({ server, page }) => {
      const load = startLoad(server.port, { clients: 4, maxRequests: 200_000, maxMs: 10_000 });
      // The supervisor samples once a second: wait for a sample with the load's rate in it.
      await waitUntil(async () => {
        const history = await (await server.admin("/v1/stats/history")).json() as {
          samples: { repliesPerSecond: number }[];
        };
        return history.samples.some((sample) => sample.repliesPerSecond > 0);
      }, { ...PAGE, what: "a rate above 0 in /v1/stats/history" });
      assert.ok(await load.stop() > 0, "the load got replies");
      // Signed in only now: the load is over, so any rate on the chart came from the history.
      await signedIn(page);
      const chart = page.locator("#chart-replies");
      await waitUntil(async () => (await chart.getAttribute("data-peak")) !== null, {
        ...PAGE,
        what: "the chart to be drawn",
      });
      assert.ok(Number(await chart.getAttribute("data-peak")) > 0, "no history on the chart");
    });
  },
);

test(
  `[${UNDER_TEST}] dashboard in chromium: the per-process charts start from /v1/stats/history, before the page opened`,
  { skip: skipBrowser },
  async () => {
    await withDashboard(["--processes", "2", "--threads", "1"], async ({ server, page }) => {
      type History = {
        samples: { ageSeconds: number; processes: { index: number; rssBytes?: number }[] }[];
      };
      // The processes report (and the supervisor samples) every 50 ms here: wait until the
      // history reaches a second back with both processes' memory in it.
      await waitUntil(async () => {
        const { samples } = await (await server.admin("/v1/stats/history")).json() as History;
        const measured = samples.filter((s) =>
          s.processes.filter((p) => p.rssBytes! > 0).length === 2
        );
        return measured.length > 0 && measured[0]!.ageSeconds >= 1;
      }, { ...PAGE, what: "a second of both processes' memory in /v1/stats/history" });
      const openedAt = Date.now();
      await signedIn(page);
      for (
        const id of ["#chart-process-memory", "#chart-process-cpu", "#chart-process-restarts"]
      ) {
        const chart = page.locator(id);
        await waitUntil(async () => (await chart.getAttribute("data-processes")) === "0,1", {
          ...PAGE,
          what: `${id} to have both processes`,
        });
        const oldestAttribute = await chart.getAttribute("data-oldest");
        assert.ok(oldestAttribute !== null, `${id} says when its oldest point was taken`);
        const oldest = Number(oldestAttribute);
        assert.ok(
          oldest < openedAt - 900,
          `${id} starts ${openedAt - oldest} ms before the page opened, not a second or more`,
        );
      }
      // Both processes' memory is on the chart, as read from the history already.
      assert.match(
        await page.locator("#chart-process-memory").getAttribute("aria-label") ?? "",
        /process 0 now [\d.]+ MiB, peak [\d.]+ MiB; process 1 now [\d.]+ MiB/,
      );
      mkdirSync(SCREENSHOTS, { recursive: true });
      await page.locator("#chart-process-memory").scrollIntoViewIfNeeded();
      await page.screenshot({ path: join(SCREENSHOTS, "dashboard-process-history.png") });
    }, { env: FAST_STATS });
  },
);

test(
  `[${UNDER_TEST}] dashboard in chromium: Apply at phone width leaves the form where it was`,
  { skip: skipBrowser },
  async () => {
    await withDashboard(["--threads", "1"], async ({ page }) => {
      await page.setViewportSize({ width: 390, height: 844 });
      await signedIn(page);
      await page.evaluate("document.getElementById('apply').scrollIntoView({ block: 'end' })");
      await afterPolls(page, 1);
      const applyTop = async () =>
        Number(
          await page.evaluate(
            "Math.round(document.getElementById('apply').getBoundingClientRect().top)",
          ),
        );
      const before = await applyTop();
      await page.locator("#field-idle-timeout").fill("45s");
      await page.locator("#apply").click();
      await waitUntil(async () => (await text(page, "#annotations")).includes("idle-timeout"), {
        ...PAGE,
        what: "the change to be listed",
      });
      await afterPolls(page, 2); // the charts and the list above the form redrawn
      // A line of text above the form may reflow by a pixel or two as the list redraws; what
      // the operator would notice (the form or the charts jumping away) is a move of a screen
      // line or more.
      const after = await applyTop();
      assert.ok(
        Math.abs(after - before) <= 16,
        `Apply moved the form on the screen: ${before} -> ${after}`,
      );
      assert.match(await text(page, "#config-status"), /^Applied as generation 2: idle-timeout/);
    });
  },
);

test(
  `[${UNDER_TEST}] dashboard in chromium: three changes applied at 1280x800 under load leave the form where it was`,
  { skip: skipBrowser },
  async () => {
    await withDashboard(["--threads", "2"], async ({ server, page }) => {
      const load = startLoad(server.port, { clients: 4, maxRequests: 2_000_000, maxMs: 30_000 });
      try {
        await signedIn(page);
        await page.evaluate("document.getElementById('apply').scrollIntoView({ block: 'end' })");
        await afterPolls(page, 1);
        const applyTop = async () =>
          Number(
            await page.evaluate(
              "Math.round(document.getElementById('apply').getBoundingClientRect().top)",
            ),
          );
        const before = await applyTop();
        for (const [generation, value] of [[2, "41s"], [3, "42s"], [4, "43s"]] as const) {
          await page.locator("#field-idle-timeout").fill(value);
          await page.locator("#apply").click();
          await waitUntil(async () =>
            (await text(page, "#config-status")).startsWith(
              `Applied as generation ${generation}: idle-timeout`,
            ), { ...PAGE, what: `generation ${generation} to be applied` });
          await afterPolls(page, 1); // the charts and the list of changes above the form redrawn
          // The list above grows a line per change; the browser keeps the form in place (the
          // content above it moves up instead), as on a phone. A move of a line or more fails.
          const after = await applyTop();
          assert.ok(
            Math.abs(after - before) <= 16,
            `Apply ${generation - 1} moved the form on the screen: ${before} -> ${after}`,
          );
        }
        assert.equal((await text(page, "#annotations")).match(/idle-timeout/g)?.length, 3);
      } finally {
        await load.stop();
      }
    });
  },
);
