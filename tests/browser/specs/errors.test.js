// Error tracking from the browser: errors thrown on the ordering page (and a rejected promise)
// reach brigade up's error groups through the page's reporter (web/common.js); repeats land in
// one group; the dashboard's Errors section lists it and resolves it, and the error coming back
// opens it again; failed API calls are reported with the failed answer's trace id.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startUp, launchBrowser, newPerson, screenshot } from "./support.js";

let up;
let browser;

before(async () => {
  up = await startUp("up-errors");
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (up) await up.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The groups of `GET /api/errors` (`query`: e.g. `?state=open`). */
async function groups(query = "") {
  return (await (await fetch(`${up.ops}/api/errors${query}`)).json()).groups;
}

/** Polls until `find(groups)` returns something, for at most 15 s. */
async function waitForGroup(what, find, query = "") {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const found = find(await groups(query));
    if (found) return found;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}: ${JSON.stringify(await groups())}`);
    await sleep(100);
  }
}

/** Opens the ordering page and throws `messages` from a timer (uncaught: window.onerror). */
async function throwOnOrderingPage(page, messages) {
  await page.goto("/");
  await page.getByRole("heading", { level: 1 }).first().waitFor();
  const before = (page.errors || []).length;
  await page.evaluate((texts) => {
    for (const text of texts) setTimeout(() => { throw new Error(text); }, 0);
  }, messages);
  // The browser saw them as uncaught errors of the page.
  const deadline = Date.now() + 5_000;
  while ((page.errors || []).length < before + messages.length) {
    assert.ok(Date.now() < deadline, "the thrown errors reached the page");
    await sleep(20);
  }
}

test("a thrown error on the ordering page is grouped with its repeats, resolved and reopened", async () => {
  const customer = await newPerson(browser, up.public);
  await throwOnOrderingPage(customer, ["basket 41 went missing", "basket 42 went missing"]);
  await throwOnOrderingPage(customer, ["basket 43 went missing"]);
  await customer.evaluate(() => { Promise.reject(new Error("menu 7 not loaded")); });

  const basket = await waitForGroup("the basket group with 3 errors",
    (all) => all.find((g) => g.title === "basket <n> went missing" && g.count === 3));
  assert.equal(basket.kind, "client-error");
  assert.equal(basket.route, "/");
  assert.equal(basket.service, "serve");
  assert.equal(basket.state, "open");
  assert.ok(basket.release.length > 0);
  assert.ok(basket.trace_ids.length >= 1 && basket.trace_ids.every((id) => /^[0-9a-f]{32}$/.test(id)));
  assert.ok(basket.frames.length >= 1, JSON.stringify(basket));
  const rejection = await waitForGroup("the rejection group",
    (all) => all.find((g) => g.kind === "client-rejection"));
  assert.equal(rejection.title, "menu <n> not loaded");
  assert.equal((await groups()).filter((g) => g.kind === "client-error").length, 1, "one group for the repeats");

  // The dashboard lists the group and resolves it.
  const ops = await newPerson(browser, up.ops);
  await ops.goto("/");
  const row = ops.locator(`#error-groups tr[data-fingerprint="${basket.fingerprint}"]`);
  await row.waitFor();
  assert.equal(await row.getAttribute("data-count"), "3");
  assert.equal(await row.locator("a[href^='#trace/']").count(), basket.trace_ids.length);
  await ops.setViewportSize({ width: 1280, height: 600 });
  await ops.locator("#error-groups-section").scrollIntoViewIfNeeded();
  await ops.screenshot({ path: await screenshot(ops, "errors-dashboard") });
  await row.getByRole("button", { name: /^Resolve/ }).click();
  await row.waitFor({ state: "detached" });
  await waitForGroup("the group resolved",
    (all) => all.find((g) => g.fingerprint === basket.fingerprint), "?state=resolved");

  // The same error again: the group opens again, in the dashboard too.
  await throwOnOrderingPage(customer, ["basket 44 went missing"]);
  const reopened = await waitForGroup("the group reopened",
    (all) => all.find((g) => g.fingerprint === basket.fingerprint && g.reopened === 1), "?state=open");
  assert.equal(reopened.count, 4);
  await ops.locator(`#error-groups tr[data-fingerprint="${basket.fingerprint}"][data-state="open"]`).waitFor({ timeout: 15_000 });
  assert.deepEqual(ops.errors || [], []);
});

test("a page's failed API calls are reported with the failed answer's trace id", async () => {
  const customer = await newPerson(browser, up.public);
  await customer.goto("/");
  await customer.getByRole("heading", { level: 1 }).first().waitFor();
  // A 5xx answer (made by the browser's test harness, so no replica is harmed) naming its trace.
  const trace = "0af7651916cd43dd8448eb211c80319c";
  await customer.route("**/api/v1/shops", (route) => route.fulfill({
    status: 503, contentType: "application/problem+json", body: "{}",
    headers: { traceparent: `00-${trace}-b7ad6b7169203331-01` },
  }));
  const status = await customer.evaluate(() => fetch("/api/v1/shops").then((r) => r.status));
  assert.equal(status, 503);
  // No answer at all: nothing listens on port 9.
  await customer.evaluate(() => fetch("http://127.0.0.1:9/unreachable?who=ann").catch(() => "failed"));

  const answered = await waitForGroup("the 503 group",
    (all) => all.find((g) => g.kind === "client-fetch" && g.title === "GET /api/v1/shops answered <n>"));
  assert.deepEqual(answered.trace_ids.slice(-1), [trace], "the failed answer's trace, to find the server's side");
  assert.equal(answered.route, "/");
  const unreachable = await waitForGroup("the network failure group",
    (all) => all.find((g) => g.kind === "client-fetch" && g.title.startsWith("GET /unreachable failed")));
  assert.ok(!unreachable.message.includes("ann"), "no query string leaves the page");
  await customer.context().close();
});
