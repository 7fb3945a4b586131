// Shared by the browser specs: start brigade (the binary cargo built) and headless Chromium
// (Debian's, never a downloaded one), log in through the pages, save screenshots.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../..");
export const BRIGADE = process.env.BRIGADE_BIN
  || join(process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : join(repo, "target"), "debug", "brigade");
export const OUTPUT = resolve(process.env.BROWSER_TEST_OUTPUT || join(here, "..", "output"));
export const PASSWORD = "browser-test-password";
mkdirSync(OUTPUT, { recursive: true });

/** The test's environment without database or Redis URLs (each run gets its own SQLite). */
function childEnv(extra) {
  const env = { ...process.env, BRIGADE_DEMO_PASSWORD: PASSWORD, ...extra };
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  return env;
}

/**
 * Runs brigade with `args` until a JSON log line matches `ready`; returns it and the process.
 * `dataDir`: use this data directory (kept) instead of a fresh one (removed at stop).
 */
async function startProcess(name, args, env, ready, { dataDir: given } = {}) {
  const dataDir = given || mkdtempSync(join(tmpdir(), `brigade-browser-${name}-`));
  const child = spawn(BRIGADE, [...args, "--log-format", "json", "--data-dir", dataDir], {
    env: childEnv(env),
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stderr.pipe(createWriteStream(join(OUTPUT, `${name}.stderr.log`)));
  const log = createWriteStream(join(OUTPUT, `${name}.log`));
  const lines = createInterface({ input: child.stdout });
  const line = await new Promise((resolveLine, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no ready line within 180 s`)), 180_000);
    child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`${name} exited with ${code}`)); });
    lines.on("line", (text) => {
      log.write(`${text}\n`);
      let value;
      try { value = JSON.parse(text); } catch (_) { return; }
      const fields = { ...value, ...(value.fields || {}) };
      if (ready(fields)) { clearTimeout(timer); resolveLine(fields); }
    });
  });
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    }
    if (!given) rmSync(dataDir, { recursive: true, force: true });
  };
  return { child, line, stop, dataDir };
}

/**
 * `brigade up` on free ports, with demo data; `{public, ops, balancerAdmin, dataDir, stop}`.
 * `rules`: the text of an extra alert rule file for its watch (`--alert-rules`).
 */
export async function startUp(name, env = {}, { rules } = {}) {
  let rulesDir;
  const args = ["up", "--port", "0", "--ops-port", "0"];
  if (rules) {
    rulesDir = mkdtempSync(join(tmpdir(), `brigade-browser-${name}-rules-`));
    writeFileSync(join(rulesDir, "rules.yml"), rules);
    args.push("--alert-rules", join(rulesDir, "rules.yml"));
  }
  const up = await startProcess(name, args, env, (fields) => (fields.message === "brigade is up"));
  const stop = async () => {
    await up.stop();
    if (rulesDir) rmSync(rulesDir, { recursive: true, force: true });
  };
  return { ...up, stop, public: `http://${up.line.public}`, ops: `http://${up.line.ops}`, balancerAdmin: up.line.balancer_admin };
}

/** `brigade dashboard` (no supervisor) against `up`'s balancer and watch and its logs. */
export async function startDashboard(name, up) {
  const status = await (await fetch(`${up.ops}/api/status`)).json();
  const dashboard = await startProcess(name, ["dashboard", "--listen", "127.0.0.1:0",
    "--balancer-admin", up.balancerAdmin, "--watch", status.watch], {},
  (fields) => fields.message === "listening" && !!fields.address, { dataDir: up.dataDir });
  return { ...dashboard, url: `http://${dashboard.line.address}` };
}

/** Runs brigade to completion with `args`; resolves to `{code, stdout, stderr}`. */
export function runBrigade(args, env = {}) {
  return new Promise((resolveRun, reject) => {
    const child = spawn(BRIGADE, args, { env: childEnv(env), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => { stdout += d; });
    child.stderr.on("data", (d) => { stderr += d; });
    child.once("error", reject);
    child.once("exit", (code) => resolveRun({ code, stdout, stderr }));
  });
}

/** One `brigade serve --demo` replica; `{public, stop}`. */
export async function startServe(name, env = {}) {
  const serve = await startProcess(name, ["serve", "--demo", "--listen", "127.0.0.1:0"], env,
    (fields) => fields.message === "listening" && !!fields.address);
  return { ...serve, public: `http://${serve.line.address}` };
}

/** Debian's Chromium, headless, without sandbox or background traffic; a fresh profile. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
      "--disable-default-apps", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
  });
}

/** A page in its own context (its own localStorage: one person), phone-sized when asked. */
export async function newPerson(browser, baseURL, { phone = false } = {}) {
  const context = await browser.newContext({
    baseURL,
    viewport: phone ? { width: 360, height: 780 } : { width: 1280, height: 900 },
  });
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  page.on("pageerror", (error) => { page.errors = [...(page.errors || []), error]; });
  return page;
}

/** Fills and submits the log-in panel of the current page. */
export async function logIn(page, email, password = PASSWORD) {
  await page.getByLabel("E-mail").fill(email);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Log in", exact: true }).click();
  await page.locator("#logout").waitFor();
}

/** Saves a full-page screenshot under the output directory and returns its path. */
export async function screenshot(page, name) {
  const path = join(OUTPUT, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** The bearer token the page keeps. */
export async function tokenOf(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem("brigade.session")).token);
}

/** A fresh e-mail address for a sign-up. */
export function newEmail(prefix) {
  return `${prefix}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}
