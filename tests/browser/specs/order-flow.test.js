// The whole life of an order through the pages, against a real `brigade up`: a customer signs
// up and orders two pizzas and a garlic bread; staff accept, claim and complete the tickets on
// the kitchen display; a courier picks it up and delivers it; the customer's order page follows
// every status without a reload. Also: a double click places one order.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startUp, launchBrowser, newPerson, logIn, screenshot, tokenOf, newEmail, PASSWORD } from "./support.js";

let up;
let browser;

before(async () => {
  up = await startUp("up-order-flow");
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (up) await up.stop();
});

async function showMitte(page) {
  await page.goto("/");
  const option = page.locator("#shop-select option", { hasText: "Brigade Mitte" });
  await page.locator("#shop-select").selectOption(await option.getAttribute("value"));
  await page.getByRole("button", { name: "Show menu" }).click();
  await page.locator("#menu-title", { hasText: "Brigade Mitte" }).waitFor();
}

async function waitForStatus(page, status) {
  await page.locator(`#order-status[data-status="${status}"]`).waitFor({ timeout: 30_000 });
}

async function claimAndComplete(kitchen, station, label) {
  await kitchen.locator("#station-select").selectOption({ label: station });
  const ticket = kitchen.locator("#tickets li.ticket", { hasText: label });
  await ticket.getByRole("button", { name: /^Claim/ }).click();
  await kitchen.locator("#tickets li.ticket.claimed", { hasText: label }).waitFor();
  await ticket.getByRole("button", { name: /^Complete/ }).click();
  await ticket.waitFor({ state: "detached" });
}

test("a customer's order goes through every status as the kitchen and a courier work it", async () => {
  const customer = await newPerson(browser, up.public, { phone: true });
  await showMitte(customer);
  await screenshot(customer, "ordering-page-anonymous");

  // Sign up with the log-in panel's fields.
  const email = newEmail("customer");
  await customer.getByLabel("E-mail").fill(email);
  await customer.getByLabel("Password", { exact: true }).fill("a long enough password");
  await customer.getByRole("button", { name: "Sign up" }).click();
  await customer.locator("#who", { hasText: email }).waitFor();

  await customer.getByRole("button", { name: "Add Margherita to the cart" }).click();
  await customer.getByRole("button", { name: "Add Margherita to the cart" }).click();
  await customer.getByRole("button", { name: "Add Garlic Bread to the cart" }).click();
  await customer.locator("#cart-lines li", { hasText: "2 × Margherita" }).waitFor();
  await customer.locator("#cart-lines li", { hasText: "1 × Garlic Bread" }).waitFor();
  assert.equal(await customer.locator("#cart-total").textContent(), "23.50 EUR");
  await screenshot(customer, "ordering-page-cart");
  const overflow = () => customer.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(await overflow() <= 360, "no sideways scrolling on a 360 px phone");

  await customer.getByRole("button", { name: "Place order" }).click();
  await customer.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
  const orderId = customer.url().split("/").pop();
  const suffix = orderId.slice(-6);
  await waitForStatus(customer, "placed");
  await customer.locator("#order-lines li", { hasText: "2 × Margherita" }).waitFor();
  assert.match(await customer.locator("#order-eta").textContent(), /^\d\d:\d\d/);
  await screenshot(customer, "order-page-placed");

  const kitchen = await newPerson(browser, up.public);
  await kitchen.goto("/kitchen");
  await logIn(kitchen, "staff.mitte@brigade.demo");
  const newOrder = kitchen.locator("#new-orders li", { hasText: suffix });
  await newOrder.getByRole("button", { name: `Accept order ${suffix}` }).click();
  await newOrder.waitFor({ state: "detached" });
  await waitForStatus(customer, "accepted");

  await kitchen.locator("#station-select").selectOption({ label: "pizza" });
  await kitchen.locator("#tickets li.ticket", { hasText: "2 × Margherita" }).waitFor();
  await screenshot(kitchen, "kitchen-display");
  await claimAndComplete(kitchen, "pizza", suffix);
  await waitForStatus(customer, "preparing");
  await claimAndComplete(kitchen, "garlic-bread", suffix);
  await waitForStatus(customer, "ready");
  await screenshot(customer, "order-page-ready");

  const courier = await newPerson(browser, up.public, { phone: true });
  await courier.goto("/courier");
  await logIn(courier, "courier.mitte@brigade.demo");
  const ready = courier.locator("#ready-orders li", { hasText: suffix });
  await ready.waitFor();
  await screenshot(courier, "courier-view");
  assert.ok(await courier.evaluate(() => document.documentElement.scrollWidth) <= 360, "courier view fits a phone");
  await ready.getByRole("button", { name: `Pick up: order ${suffix}` }).click();
  const road = courier.locator("#road-orders li", { hasText: suffix });
  await road.waitFor();
  await waitForStatus(customer, "out_for_delivery");
  await road.getByRole("button", { name: `Delivered: order ${suffix}` }).click();
  await road.waitFor({ state: "detached" });
  await waitForStatus(customer, "delivered");
  for (const step of ["placed", "accepted", "preparing", "ready", "out_for_delivery", "delivered"]) {
    assert.ok(await customer.locator(`#timeline li[data-status="${step}"].done`).count(), step);
  }
  await screenshot(customer, "order-page-delivered");
  for (const page of [customer, kitchen, courier]) assert.deepEqual(page.errors || [], []);
  await Promise.all([customer, kitchen, courier].map((p) => p.context().close()));
});

test("a double click on Place order places one order", async () => {
  const customer = await newPerson(browser, up.public);
  await customer.goto("/");
  const email = newEmail("double");
  await customer.getByLabel("E-mail").fill(email);
  await customer.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await customer.getByRole("button", { name: "Sign up" }).click();
  await customer.locator("#who", { hasText: email }).waitFor();
  await customer.getByRole("button", { name: "Add Diavola to the cart" }).click();
  await customer.getByRole("button", { name: "Place order" }).dblclick();
  await customer.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
  await waitForStatus(customer, "placed");
  const token = await tokenOf(customer);
  const response = await fetch(`${up.public}/api/v1/orders`, { headers: { authorization: `Bearer ${token}` } });
  const orders = (await response.json()).items;
  assert.equal(orders.length, 1, JSON.stringify(orders));
  await screenshot(customer, "order-page-after-double-click");
  await customer.context().close();
});
