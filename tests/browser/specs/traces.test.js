// The ops dashboard's Traces view on a real `brigade up`: an order placed through the balancer
// with a known request id is found by the search, and its waterfall shows span rows of the
// balancer and of the replica, each span opening its attributes.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startUp, launchBrowser, newPerson, screenshot, PASSWORD } from "./support.js";

let up;
let browser;

before(async () => {
  up = await startUp("up-traces", { OTEL_BSP_SCHEDULE_DELAY: "100" });
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (up) await up.stop();
});

/** Places one order through the balancer with `requestId`; returns its trace id. */
async function placeOrder(requestId) {
  const session = await (await fetch(`${up.public}/api/v1/sessions`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: "customer@brigade.demo", password: PASSWORD }),
  })).json();
  const shops = await (await fetch(`${up.public}/api/v1/shops`)).json();
  const menu = await (await fetch(`${up.public}/api/v1/shops/${shops[0].id}/menu`)).json();
  const placed = await fetch(`${up.public}/api/v1/orders`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${session.token}`, "x-request-id": requestId },
    body: JSON.stringify({ shop_id: shops[0].id, items: [{ item_id: menu[0].item_id, quantity: 1 }], delivery: { lat: 52.51, lon: 13.4 } }),
  });
  assert.equal(placed.status, 201, await placed.text());
  return placed.headers.get("traceparent").split("-")[1];
}

test("the Traces view finds an order's trace and draws it across the balancer and a replica", async () => {
  const requestId = `browser-trace-${Date.now()}`;
  const traceId = await placeOrder(requestId);
  // Wait (with a deadline) until watch holds the spans of both processes.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const answer = await fetch(`${up.ops}/api/traces?request_id=${requestId}`);
    const body = await answer.json();
    if (body.traces && body.traces[0] && body.traces[0].services.length >= 2) break;
    assert.ok(Date.now() < deadline, `trace of ${requestId} never held two services: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  const page = await newPerson(browser, up.ops);
  await page.goto("/");
  await page.getByRole("link", { name: "Traces", exact: true }).click();
  await page.getByLabel("Request id", { exact: true }).fill(requestId);
  await page.getByRole("button", { name: "Search traces" }).click();
  const result = page.locator(`#trace-results li[data-trace-id="${traceId}"]`);
  await result.waitFor();
  await result.locator("a.trace-link").click();

  const rows = page.locator("#trace-waterfall .span-row");
  await page.locator('#trace-waterfall .span-row[data-service="brigade-balance"]').first().waitFor();
  await page.locator('#trace-waterfall .span-row[data-service="brigade-serve"]').first().waitFor();
  const services = new Set(await rows.evaluateAll((all) => all.map((row) => row.dataset.service)));
  assert.ok(services.has("brigade-balance") && services.has("brigade-serve"), [...services].join(", "));
  assert.match(await page.locator("#trace-title").textContent(), new RegExp(traceId));

  // The replica's request span opens its attributes and its log lines.
  const replica = rows.filter({ hasText: "POST /api/v1/orders" }).filter({ hasText: "brigade-serve" }).first();
  await replica.locator("summary").click();
  await replica.locator("dt", { hasText: "http.route" }).waitFor();
  await replica.locator(".log-line", { hasText: "request completed" }).first().waitFor();
  await screenshot(page, "dashboard-trace-waterfall");
  assert.deepEqual(page.errors || [], []);
});

test("a dot on the latency chart opens the trace of a request in that bucket", async () => {
  const traceId = await placeOrder(`browser-exemplar-${Date.now()}`);
  // Wait until watch has scraped the replica's exemplar of that order (every 5 s under up).
  const query = new URLSearchParams({
    query: "http_server_request_duration_seconds_bucket",
    start: String(Math.floor(Date.now() / 1000) - 600),
    end: String(Math.floor(Date.now() / 1000) + 600),
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const body = await (await fetch(`${up.ops}/api/dashboard/watch/query_exemplars?${query}`)).json();
    const traces = body.data.flatMap((s) => s.exemplars.map((e) => e.labels.trace_id));
    if (traces.includes(traceId)) break;
    assert.ok(Date.now() < deadline, `no exemplar names ${traceId}: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 200));
  }

  const page = await newPerson(browser, up.ops);
  await page.goto("/");
  const link = page.locator('figure[data-chart="latency"] .exemplars a.trace-link').first();
  await link.waitFor({ timeout: 30_000 });
  const href = await link.getAttribute("href");
  assert.match(href, /^#trace=[0-9a-f]{32}$/);
  await link.click();
  await page.locator("#trace-waterfall .span-row").first().waitFor();
  assert.match(await page.locator("#trace-title").textContent(), new RegExp(href.slice("#trace=".length)));
  assert.deepEqual(page.errors || [], []);
});
