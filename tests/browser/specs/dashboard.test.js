// The ops dashboard of `brigade up` (its ops port), against one `brigade up` whose watch runs a
// small rule file: charts of customer traffic; an alert fired by the error-burst drill, shown
// and silenced from the page; the drill's error lines linking to the log search; scale and
// rollout buttons; drain/undrain; a replica killed with SIGKILL shown down and back; and the
// same page served by `brigade dashboard` without a supervisor.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startUp, startDashboard, runBrigade, launchBrowser, newPerson, screenshot, PASSWORD,
} from "./support.js";

// Fires as soon as a replica has answered any request with 5xx (the shipped rules wait minutes).
const RULES = `groups:
  - name: browser-test
    rules:
      - alert: BrigadeServerErrors
        expr: sum by (job, instance) (http_server_request_duration_seconds_count{http_response_status_code=~"5.."}) > 0
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.instance }} answered {{ $value }} requests with 5xx"
`;

let up;
let browser;
let standalone;

before(async () => {
  up = await startUp("up-dashboard", {}, { rules: RULES });
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (standalone) await standalone.stop();
  if (up) await up.stop();
});

const status = async () => (await fetch(`${up.ops}/api/status`)).json();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Customers' traffic until `done()` resolves: menu reads and an order a second. */
async function traffic(done) {
  const session = await (await fetch(`${up.public}/api/v1/sessions`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: "customer@brigade.demo", password: PASSWORD }),
  })).json();
  const shops = await (await fetch(`${up.public}/api/v1/shops`)).json();
  const menu = await (await fetch(`${up.public}/api/v1/shops/${shops[0].id}/menu`)).json();
  let finished = false;
  done.then(() => { finished = true; });
  for (let n = 0; !finished; n += 1) {
    await fetch(`${up.public}/api/v1/shops/${shops[0].id}/menu`);
    if (n % 3 === 0) {
      const placed = await fetch(`${up.public}/api/v1/orders`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${session.token}`, "idempotency-key": `chart-${Date.now()}-${n}` },
        body: JSON.stringify({ shop_id: shops[0].id, items: [{ item_id: menu[0].item_id, quantity: 1 }], delivery: { lat: 52.51, lon: 13.4 } }),
      });
      assert.equal(placed.status, 201, await placed.text());
    }
    await sleep(300);
  }
}

test("the charts show the last minutes of requests, latency, processes, orders and revenue", async () => {
  let stop;
  const load = traffic(new Promise((r) => { stop = r; }));
  const page = await newPerson(browser, up.ops);
  await page.goto("/");
  await page.locator("#charts-section").waitFor();
  try {
    for (const chart of ["requests", "latency", "errors", "cpu", "memory", "orders", "revenue"]) {
      const figure = page.locator(`figure[data-chart="${chart}"]`);
      await figure.waitFor();
      // Data: points on the chart and a non-zero latest value (errors: a 0 % line).
      await page.waitForFunction((id) => {
        const f = document.querySelector(`figure[data-chart="${id}"]`);
        return f && Number(f.dataset.points) > 0 && (id === "errors" || Number(f.dataset.max) > 0);
      }, chart, { timeout: 60_000 });
      assert.ok(await figure.locator("canvas").count() > 0, `${chart}: drawn by uPlot`);
    }
  } finally {
    stop();
    await load;
  }
  assert.match(await page.locator('figure[data-chart="requests"] .latest').textContent(), /orders \d+(\.\d)? req\/s/);
  assert.match(await page.locator('figure[data-chart="memory"] .latest').textContent(), /serve-orders-1 \(orders\) \d+ MiB/);
  await screenshot(page, "dashboard-charts");

  const phone = await newPerson(browser, up.ops, { phone: true });
  await phone.goto("/");
  await phone.locator('figure[data-chart="requests"] canvas').waitFor();
  assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth) <= 360, "no sideways scrolling on a phone");
  await screenshot(phone, "dashboard-phone");
  for (const p of [page, phone]) assert.deepEqual(p.errors || [], []);
  await Promise.all([page.context().close(), phone.context().close()]);
});

test("an alert fired by the error-burst drill is shown and silenced for an hour from the page", async () => {
  const page = await newPerson(browser, up.ops);
  await page.goto("/");
  const ops = new URL(up.ops).host;
  const drill = runBrigade(["drill", "error-burst", "--ops", ops, "--phase-secs", "3", "--clients", "8", "--json"]);
  const alert = page.locator('#alerts li.alert[data-alertname="BrigadeServerErrors"][data-state="firing"]');
  const drillFailed = drill.then((r) => (r.code === 0 ? new Promise(() => {}) : Promise.reject(new Error(`the drill failed: ${r.stderr}`))));
  await Promise.race([alert.first().waitFor({ timeout: 60_000 }), drillFailed]);
  // Watchdog fires on purpose: shown as the pipeline's heartbeat, never as a firing alert.
  await page.locator("#alert-pipeline.ok", { hasText: "Watchdog" }).waitFor({ timeout: 30_000 });
  assert.equal(await page.locator('#alerts li[data-alertname="Watchdog"]').count(), 0);
  const report = await drill;
  assert.equal(report.code, 0, report.stderr);
  assert.ok(JSON.parse(report.stdout).failed > 0, "the drill saw the 500s");
  await screenshot(page, "dashboard-alert-firing");

  await alert.first().getByRole("button", { name: /^Silence BrigadeServerErrors .* for one hour$/ }).click();
  const silenced = page.locator('#alerts li.alert[data-alertname="BrigadeServerErrors"][data-silenced="true"]');
  await silenced.first().waitFor();
  assert.match(await silenced.first().locator(".silence-state").textContent(), /^Silenced until \d/);
  const silences = await (await fetch(`${up.ops}/api/dashboard/watch/silences`)).json();
  const active = silences.silences.filter((s) => s.status.state === "active");
  assert.ok(active.length >= 1, JSON.stringify(silences));
  assert.ok(active[0].matchers.includes('alertname="BrigadeServerErrors"'), JSON.stringify(active[0]));
  const hours = (new Date(active[0].endsAt) - new Date(active[0].startsAt)) / 3_600_000;
  assert.ok(Math.abs(hours - 1) < 0.01, `one hour, not ${hours}`);
  await screenshot(page, "dashboard-alert-silenced");
  assert.deepEqual(page.errors || [], []);
  await page.context().close();
});

test("the latest error lines link their request ids to the log search", async () => {
  const page = await newPerson(browser, up.ops);
  await page.goto("/");
  // The drill's 500s were logged by the replica as "request failed" warnings.
  const line = page.locator("#error-lines li", { hasText: "request failed" }).filter({ has: page.locator("a.request-id") });
  await line.first().waitFor({ timeout: 30_000 });
  const link = line.first().locator("a.request-id");
  const id = await link.textContent();
  await link.click();
  await page.locator("#log-results li").first().waitFor();
  assert.equal(await page.getByLabel("Text or request id").inputValue(), id);
  const results = await page.locator("#log-results li").allTextContents();
  assert.ok(results.length >= 1);
  for (const text of results) assert.ok(text.includes(id), text);
  assert.equal(new URL(page.url()).searchParams.get("grep"), id, "the search is in the address, so it can be shared");
  await screenshot(page, "dashboard-log-search");

  // Typed searches too, and a reload of the shared address repeats it.
  await page.reload();
  await page.locator("#log-results li").first().waitFor();
  await page.getByLabel("Text or request id").fill("listening");
  await page.getByLabel("Level and more severe").selectOption("info");
  await page.getByLabel("Service").selectOption("watch");
  await page.getByRole("button", { name: "Search logs" }).click();
  await page.locator("#log-results li", { hasText: "listening" }).first().waitFor();
  assert.match(await page.locator("#log-summary").textContent(), /^\d+ lines?, newest first/);
  for (const text of await page.locator("#log-results li").allTextContents()) assert.match(text, /watch/);
  assert.deepEqual(page.errors || [], []);
  await page.context().close();
});

test("the live tail shows a request's log line as it is written, filtered by the search", async () => {
  const page = await newPerson(browser, up.ops);
  await page.goto("/");
  const id = `live-tail-${Date.now()}`;
  await page.getByLabel("Text or request id").fill(id);
  await page.getByLabel("Follow (live tail)").check();
  await page.locator("#log-summary", { hasText: "Following" }).waitFor();
  assert.equal(await page.locator("#log-results li").count(), 0, "nothing logged this id yet");
  const answer = await fetch(`${up.public}/api/v1/shops`, { headers: { "x-request-id": id } });
  assert.equal(answer.status, 200);
  const line = page.locator("#log-results li", { hasText: "request completed" }).filter({ hasText: id });
  await line.first().waitFor({ timeout: 10_000 });
  await fetch(`${up.public}/api/v1/shops`, { headers: { "x-request-id": "some-other-request" } });
  await fetch(`${up.public}/api/v1/shops`, { headers: { "x-request-id": id } });
  await page.locator("#log-results li", { hasText: id }).nth(1).waitFor({ timeout: 10_000 });
  for (const text of await page.locator("#log-results li").allTextContents()) assert.ok(text.includes(id), text);
  await screenshot(page, "dashboard-live-tail");
  await page.getByLabel("Follow (live tail)").uncheck();
  assert.deepEqual(page.errors || [], []);
  await page.context().close();
});

test("the scale and rollout buttons change the replicas", async () => {
  const page = await newPerson(browser, up.ops);
  await page.goto("/");
  const before = await status();
  const orders = before.children.filter((c) => c.pool === "orders" && !c.backup);
  await page.getByLabel("Replicas of orders").fill(String(orders.length + 1));
  await page.getByRole("button", { name: "Scale pool orders" }).click();
  await page.locator("#messages .message.ok", { hasText: `Pool orders scaled to ${orders.length + 1}` }).waitFor();
  const known = new Set(before.children.map((c) => c.instance));
  let added;
  for (const deadline = Date.now() + 60_000; !added; await sleep(200)) {
    added = (await status()).children.find((c) => c.pool === "orders" && !known.has(c.instance) && c.state === "ready");
    assert.ok(Date.now() < deadline, "no new replica became ready");
  }
  await page.locator(`tr.child[data-instance="${added.instance}"][data-balancer="healthy"]`).waitFor({ timeout: 30_000 });
  await screenshot(page, "dashboard-scaled-up");
  await page.getByLabel("Replicas of orders").fill(String(orders.length));
  await page.getByRole("button", { name: "Scale pool orders" }).click();
  await page.locator(`tr.child[data-instance="${added.instance}"]`).waitFor({ state: "detached", timeout: 60_000 });

  const kitchen = before.children.find((c) => c.pool === "kitchen");
  await page.getByRole("button", { name: "Rollout restart of pool kitchen" }).click();
  await page.locator("#messages .message.ok", { hasText: "Pool kitchen restarted." }).waitFor({ timeout: 90_000 });
  const after = (await status()).children.find((c) => c.instance === kitchen.instance);
  assert.notEqual(after.pid, kitchen.pid, "a new process");
  await page.locator(`tr.child[data-instance="${kitchen.instance}"][data-pid="${after.pid}"]`).waitFor();
  await page.locator("#events li[data-kind='rollout']").first().waitFor();
  await screenshot(page, "dashboard-rolled-out");
  assert.deepEqual(page.errors || [], []);
  await page.context().close();
});

test("the dashboard shows every replica, and a killed one down and then back", async () => {
  const current = await status();
  const replicas = current.children.filter((c) => c.service === "serve");
  assert.ok(replicas.length >= 2, JSON.stringify(current.children));

  const page = await newPerson(browser, up.ops);
  await page.goto("/");
  for (const child of current.children) {
    await page.locator(`tr.child[data-instance="${child.instance}"][data-state="ready"]`).waitFor();
  }
  await page.getByRole("button", { name: "Rollout restart of pool orders" }).waitFor();
  await page.getByLabel("Replicas of orders").waitFor();
  for (const child of replicas) {
    await page.locator(`tr.child[data-instance="${child.instance}"][data-balancer="healthy"]`).waitFor();
  }
  await screenshot(page, "dashboard");

  const drained = replicas.find((c) => c.pool === "orders" && !c.backup && c.instance.endsWith("-2")) || replicas[0];
  await page.getByRole("button", { name: `Drain ${drained.address}` }).click();
  await page.locator(`tr.child[data-instance="${drained.instance}"][data-balancer="draining"]`).waitFor();
  const pools = await (await fetch(`${up.ops}/api/dashboard/balancer`)).json();
  const backend = pools.pools.flatMap((p) => p.backends).find((b) => b.address === drained.address);
  assert.equal(backend.draining, true, "the balancer itself drains it");
  await screenshot(page, "dashboard-drained");
  await page.getByRole("button", { name: `Undrain ${drained.address}` }).click();
  await page.locator(`tr.child[data-instance="${drained.instance}"][data-balancer="healthy"]`).waitFor();

  const victim = replicas.find((c) => c.pool === "orders" && !c.backup && c !== drained);
  process.kill(victim.pid, "SIGKILL");
  const row = (state) => page.locator(`tr.child[data-instance="${victim.instance}"][data-state="${state}"]`);
  // The supervisor restarts it within about a second, faster than the page may refresh, so
  // "down" is shown either by the row's state or by the event that stays in the list.
  const down = page
    .locator(`tr.child[data-instance="${victim.instance}"]:not([data-state="ready"])`)
    .or(page.locator("#events li", { hasText: "exited unexpectedly" }).filter({ hasText: victim.instance }));
  await down.first().waitFor({ timeout: 15_000 });
  await screenshot(page, "dashboard-replica-down");
  await row("ready").waitFor({ timeout: 60_000 });
  const pid = Number(await row("ready").getAttribute("data-pid"));
  assert.notEqual(pid, victim.pid, "a new process");
  await page.locator("#events li", { hasText: victim.instance }).first().waitFor();
  await screenshot(page, "dashboard-replica-back");
  assert.deepEqual(page.errors || [], []);
  await page.context().close();
});

test("brigade dashboard serves the same page without a supervisor", async () => {
  standalone = await startDashboard("dashboard-standalone", up);
  const page = await newPerson(browser, standalone.url);
  await page.goto("/");
  const current = await status();
  for (const child of current.children.filter((c) => c.pool === "orders" && c.state === "ready")) {
    await page.locator(`tr.backend[data-address="${child.address}"]`).waitFor();
  }
  await page.locator('figure[data-chart="requests"] canvas').waitFor({ timeout: 30_000 });
  // Firing, or resolved by now: the killed replica's counters started again from zero.
  await page.locator('#alerts-section li.alert[data-alertname="BrigadeServerErrors"]').first().waitFor({ timeout: 30_000 });
  await page.locator("#error-lines li").first().waitFor();
  assert.equal(await page.locator("#events-section").isHidden(), true, "no supervisor events");
  assert.equal(await page.getByRole("button", { name: /^Rollout restart/ }).count(), 0, "no supervisor controls");
  assert.match(await page.locator("#mode").textContent(), /standalone/);
  await screenshot(page, "dashboard-standalone");
  assert.deepEqual(page.errors || [], []);
  await page.context().close();
});
