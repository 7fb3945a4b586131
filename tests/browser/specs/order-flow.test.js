// The whole life of an order through the pages, against a real `brigade up`: a customer signs
// up and orders two pizzas and a garlic bread; staff accept, claim and complete the tickets on
// the kitchen display; a courier picks it up and delivers it; the customer's order page follows
// every status without a reload. Also: a double click places one order; a ticket past its
// order's estimated ready time is marked late; a closed shop says so.
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
  // The order page names the shop that cooks it.
  await customer.locator("#order-shop", { hasText: "Brigade Mitte" }).waitFor();
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

/** Logs in through the API; the bearer token. */
async function apiToken(email) {
  const response = await fetch(`${up.public}/api/v1/sessions`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password: PASSWORD }),
  });
  assert.equal(response.status, 201, await response.clone().text());
  return (await response.json()).token;
}

/** A JSON API call with a bearer token; `{status, body}`. */
async function call(method, path, token, body) {
  const response = await fetch(`${up.public}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

test("the kitchen display marks a ticket late once its order's estimated ready time has passed", async () => {
  const admin = await apiToken("admin@brigade.demo");
  const shops = await (await fetch(`${up.public}/api/v1/shops`)).json();
  const mitte = shops.find((s) => s.name === "Brigade Mitte");
  // A station that needs one second per item, so the estimate is due almost at once.
  const station = await call("POST", `/api/v1/shops/${mitte.id}/stations`, admin,
    { name: "express", capacity: 1, prep_seconds: { snack: 1 } });
  assert.equal(station.status, 201, JSON.stringify(station.body));
  const item = await call("POST", "/api/v1/items", admin,
    { sku: `olives-${Date.now()}`, name: "Olives", category: "snack", price_minor: 350, currency: "EUR" });
  assert.equal(item.status, 201, JSON.stringify(item.body));
  assert.equal((await call("PUT", `/api/v1/shops/${mitte.id}/items/${item.body.id}`, admin, { available: true })).status, 204);

  // Other replicas may still serve the cached menu without the new item for a few seconds.
  const customer = await apiToken("customer@brigade.demo");
  let order;
  for (const deadline = Date.now() + 30_000; ; await new Promise((r) => setTimeout(r, 500))) {
    order = await call("POST", "/api/v1/orders", customer,
      { shop_id: mitte.id, items: [{ item_id: item.body.id, quantity: 1 }], delivery: { lat: 52.52, lon: 13.4 } });
    if (order.status === 201) break;
    assert.ok(Date.now() < deadline, JSON.stringify(order.body));
  }
  const suffix = order.body.id.slice(-6);

  const kitchen = await newPerson(browser, up.public);
  await kitchen.goto("/kitchen");
  await logIn(kitchen, "staff.mitte@brigade.demo");
  await kitchen.locator("#station-select").selectOption({ label: "express" });
  const ticket = kitchen.locator("#tickets li.ticket", { hasText: `Order ${suffix}` });
  await ticket.waitFor();
  await kitchen.locator("#tickets li.ticket.late", { hasText: `Order ${suffix}` }).waitFor({ timeout: 30_000 });
  assert.ok(Date.now() > new Date(order.body.estimated_ready_at).getTime(), "late only after its estimate");
  assert.match(await ticket.textContent(), /due \d/);
  assert.equal(await ticket.locator(".badge").textContent(), "late");
  await screenshot(kitchen, "kitchen-late-ticket");
  assert.deepEqual(kitchen.errors || [], []);
  await kitchen.context().close();
});

test("a closed shop's ordering page says so, and an order there is refused with a clear message", async () => {
  const admin = await apiToken("admin@brigade.demo");
  const shops = await (await fetch(`${up.public}/api/v1/shops`)).json();
  const kreuzberg = shops.find((s) => s.name === "Brigade Kreuzberg");
  assert.equal((await call("PATCH", `/api/v1/shops/${kreuzberg.id}`, admin, { open: false })).status, 200);
  try {
    const customer = await newPerson(browser, up.public, { phone: true });
    await customer.goto(`/?shop=${kreuzberg.id}`);
    const notice = customer.locator("#shop-closed");
    await notice.waitFor();
    assert.match(await notice.textContent(), /Brigade Kreuzberg is closed right now/);
    assert.match(await customer.locator("#shop-select option:checked").textContent(), /closed/);
    assert.equal(await customer.getByLabel("Let brigade pick the shop that delivers soonest").isChecked(), true,
      "orders go to an open shop unless the customer insists");
    await screenshot(customer, "ordering-page-shop-closed");

    await logIn(customer, "customer@brigade.demo");
    await customer.getByLabel("Let brigade pick the shop that delivers soonest").uncheck();
    await customer.getByRole("button", { name: "Add Margherita to the cart" }).click();
    await customer.getByRole("button", { name: "Place order" }).click();
    const error = customer.locator("#messages .message.error");
    await error.waitFor();
    assert.match(await error.getAttribute("data-problem-type"), /shop-closed/);
    // The replica that was asked knew it at once, or its transaction found out.
    assert.match(await error.textContent(), /closed/);
    await screenshot(customer, "ordering-page-shop-closed-refused");
    await customer.context().close();
  } finally {
    await call("PATCH", `/api/v1/shops/${kreuzberg.id}`, admin, { open: true });
  }
});
