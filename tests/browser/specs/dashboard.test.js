// The ops dashboard of `brigade up` (its ops port): every replica is shown with the balancer's
// view of it; draining and undraining from the page; a replica killed with SIGKILL is shown
// down, then back with a new process.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startUp, launchBrowser, newPerson, screenshot } from "./support.js";

let up;
let browser;

before(async () => {
  up = await startUp("up-dashboard");
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (up) await up.stop();
});

test("the dashboard shows every replica, and a killed one down and then back", async () => {
  const status = await (await fetch(`${up.ops}/api/status`)).json();
  const replicas = status.children.filter((c) => c.service === "serve");
  assert.ok(replicas.length >= 2, JSON.stringify(status.children));

  const page = await newPerson(browser, up.ops);
  await page.goto("/");
  for (const child of status.children) {
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
