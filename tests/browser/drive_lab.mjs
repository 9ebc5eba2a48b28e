// Drives 01_train.ipynb in JupyterLab with Debian's chromium (playwright-core), as a user would:
// run the notebook, fill the form, see validation, click Submit, watch the log, plot and state.
// Usage: node drive_lab.mjs <lab url with token> <screenshot dir> <timeout seconds>
// Prints one JSON line with what it saw; exits non-zero when a step fails.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [url, shotDir, timeoutArg] = process.argv.slice(2);
const timeout = Number(timeoutArg || 240) * 1000;
const seen = { steps: [] };
const step = (name) => { seen.steps.push(name); console.error(`[drive_lab] ${name}`); };

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "chromium-profile-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 1500 },
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(60000);

// JupyterLab may open dialogs of its own (e.g. "Build Recommended" for a legacy extension in the environment).
async function dismissDialogs() {
  const dialog = page.locator(".jp-Dialog");
  while (await dialog.count()) {
    const text = (await dialog.first().textContent()) || "";
    seen.dialogs = [...(seen.dialogs || []), text.trim().slice(0, 120)];
    await dialog.first().locator(".jp-Dialog-button", { hasText: /Cancel|Dismiss|No/ }).first().click();
    await page.waitForTimeout(300);
  }
}

async function fieldInput(label) {
  const row = page.locator(".widget-hbox").filter({ has: page.locator(".widget-label", { hasText: new RegExp(`^${label}$`) }) });
  return row.first().locator("input").first();
}

try {
  await page.goto(url);
  await page.waitForFunction(() => window.jupyterapp && document.querySelector(".jp-NotebookPanel"), null, { timeout: 180000 });
  step("notebook open");
  const kernelDeadline = Date.now() + 240000;
  while (!(await page.evaluate(() => window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.status === "idle"))) {
    if (Date.now() > kernelDeadline) throw new Error("the notebook's kernel did not become idle in 240 s");
    await dismissDialogs();
    await page.waitForTimeout(1000);
  }
  step("kernel idle");
  await page.evaluate(() => window.jupyterapp.commands.execute("notebook:run-all-cells"));
  await page.locator(".widget-button", { hasText: "Submit" }).first().waitFor({ timeout: 180000 });
  step("form shown");
  await page.waitForTimeout(1000);
  await dismissDialogs();

  const envs = await fieldInput("Envs");
  await envs.fill("0");
  await envs.press("Tab");
  await page.locator(".widget-html", { hasText: "must be an integer from 1 to 65536" }).first().waitFor({ timeout: 30000 });
  seen.validation = await page.locator(".widget-button", { hasText: "Submit" }).first().isDisabled();
  step("validation error shown next to Envs");
  await envs.fill("8");
  await envs.press("Tab");
  const iterations = await fieldInput("Iterations");
  await iterations.fill("2");
  await iterations.press("Tab");
  await page.locator(".widget-html", { hasText: "ready" }).first().waitFor({ timeout: 30000 });
  step("form valid");

  await dismissDialogs();
  await page.locator(".widget-button", { hasText: "Submit" }).first().click();
  await page.locator(".workbench-job-panel").first().waitFor({ timeout: 60000 });
  step("submitted");

  const plotSources = new Set();
  const deadline = Date.now() + timeout;
  let state = "";
  let log = "";
  while (Date.now() < deadline) {
    state = (await page.locator(".workbench-state").first().textContent().catch(() => "")) || "";
    log = (await page.locator(".workbench-log pre").first().textContent().catch(() => "")) || "";
    const src = await page.locator(".workbench-plot").first().getAttribute("src").catch(() => null);
    if (src) plotSources.add(src);
    if (["SUCCEEDED", "FAILED", "CANCELLED"].includes(state.trim())) break;
    await page.waitForTimeout(500);
  }
  await page.waitForTimeout(2500);
  const src = await page.locator(".workbench-plot").first().getAttribute("src").catch(() => null);
  if (src) plotSources.add(src);
  log = (await page.locator(".workbench-log pre").first().textContent().catch(() => log)) || log;
  seen.state = state.trim();
  seen.logLines = log.split("\n").filter(Boolean).length;
  seen.plotVersions = plotSources.size;
  await page.locator(".workbench-job-panel").first().scrollIntoViewIfNeeded();
  fs.mkdirSync(shotDir, { recursive: true });
  seen.screenshot = path.join(shotDir, "01_train_lab.png");
  await page.screenshot({ path: seen.screenshot, fullPage: false });
  step("screenshot taken");
} catch (error) {
  seen.error = String(error);
  fs.mkdirSync(shotDir, { recursive: true });
  await page.screenshot({ path: path.join(shotDir, "01_train_lab_failure.png") }).catch(() => {});
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
  console.log(JSON.stringify(seen));
  process.exit(seen.error ? 1 : 0);
}
