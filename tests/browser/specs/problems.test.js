// The messages a customer reads when an order cannot be placed: a declined payment (a replica
// whose simulated provider declines everything) and a validation error, both from the API's
// problem+json.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServe, launchBrowser, newPerson, logIn, screenshot, tokenOf } from "./support.js";

let serve;
let browser;

before(async () => {
  serve = await startServe("serve-declining", { BRIGADE_PAYMENTS__SIMULATED__DECLINE_RATIO: "1" });
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (serve) await serve.stop();
});

test("a declined payment shows its message and places nothing", async () => {
  const customer = await newPerson(browser, serve.public, { phone: true });
  await customer.goto("/");
  await logIn(customer, "customer@brigade.demo");
  await customer.getByRole("button", { name: "Add Quattro Formaggi to the cart" }).click();
  await customer.getByRole("button", { name: "Place order" }).click();
  const error = customer.locator("#messages .message.error");
  await error.waitFor();
  assert.match(await error.getAttribute("data-problem-type"), /payment-declined/);
  assert.match(await error.textContent(), /declined/i);
  assert.equal(new URL(customer.url()).pathname, "/", "stays on the ordering page");
  assert.equal(await customer.getByRole("button", { name: "Place order" }).isEnabled(), true, "can try again");
  await screenshot(customer, "ordering-page-payment-declined");
  const token = await tokenOf(customer);
  const orders = await (await fetch(`${serve.public}/api/v1/orders?status=placed`, { headers: { authorization: `Bearer ${token}` } })).json();
  assert.equal(orders.items.length, 0);
  await customer.context().close();
});

test("a validation error names the field", async () => {
  const customer = await newPerson(browser, serve.public);
  await customer.goto("/");
  await logIn(customer, "customer@brigade.demo");
  await customer.getByRole("button", { name: "Add Margherita to the cart" }).click();
  await customer.getByLabel("Latitude").fill("123");
  await customer.getByRole("button", { name: "Place order" }).click();
  const error = customer.locator("#messages .message.error");
  await error.waitFor();
  assert.match(await error.textContent(), /delivery\.lat/);
  await screenshot(customer, "ordering-page-validation-error");
  await customer.context().close();
});

test("a wrong password is refused with the API's message", async () => {
  const page = await newPerson(browser, serve.public);
  await page.goto("/kitchen");
  await page.getByLabel("E-mail").fill("staff.mitte@brigade.demo");
  await page.getByLabel("Password", { exact: true }).fill("not the password");
  await page.getByRole("button", { name: "Log in", exact: true }).click();
  await page.locator("#messages .message.error").waitFor();
  assert.equal(await page.locator("#kitchen").isHidden(), true);
  await screenshot(page, "kitchen-wrong-password");
  await page.context().close();
});
