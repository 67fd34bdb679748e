// Drives the demo page in Debian's Chromium (headless, --no-sandbox, a fresh user-data-dir, --enable-unsafe-webgpu)
// with playwright-core: serves web/ on 127.0.0.1, predicts held-out rows, edited rows and a drawn digit on each
// backend (wasm, then WebGPU: SwiftShader's adapter here), and writes what the page computed, for
// runtime-wasm/tests/browser.rs to compare with the native runtime.
//
// usage: node web/tests/demo.mjs <results.json> <screenshot.png>
// results.json: {"cases":[{"model":"digits"|"cancer","step":…,"backend":…,"features":[…],"response":{…}}],
//                "webgpu":{"navigator_gpu":bool,"adapter":bool}, "status":[…]}
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { inside, launchChromium, serve } from "./chromium.mjs";

const [resultsPath, screenshotPath] = process.argv.slice(2);
if (!screenshotPath) {
  console.error("usage: node web/tests/demo.mjs <results.json> <screenshot.png>");
  process.exit(2);
}
const webRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

const server = await serve((path) => inside(webRoot, path));
const browser = await launchChromium({ viewport: { width: 1180, height: 1100 } });
const { page } = browser;
const consoleErrors = [];
page.on("console", (message) => message.type() === "error" && consoleErrors.push(message.text()));
page.on("pageerror", (error) => consoleErrors.push(error.message));

const cases = [];
const status = [];
try {
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => document.body.dataset.ready, null, { timeout: 60000 });
  const failure = await page.evaluate(() => window.ternDemo.error);
  if (failure) throw new Error(`the demo failed to start: ${failure}`);
  const last = (model) => page.evaluate((m) => window.ternDemo.last[m], model);
  const seq = () => page.evaluate(() => window.ternDemo.seq);
  // Predictions are asynchronous: `act` starts one, then the page must finish every running prediction.
  const record = async (model, step, act) => {
    const before = await seq();
    await act();
    await page.waitForFunction((n) => window.ternDemo.seq > n && window.ternDemo.inflight === 0, before);
    const failed = await page.evaluate(() => window.ternDemo.error);
    if (failed) throw new Error(`${step}: ${failed}`);
    const entry = await last(model);
    cases.push({ model, step, backend: entry.backend, features: entry.features, response: entry.response });
  };

  for (const backend of ["wasm", "webgpu"]) {
    await page.check(`input[name=backend][value=${backend}]`);
    await page.waitForFunction(() => !document.getElementById("backend-status").textContent.includes("loading")
      && window.ternDemo.inflight === 0);
    status.push(await page.textContent("#backend-status"));
    // Held-out rows as they are, then one edited value.
    const rows = await page.$$eval("#cancer-row option", (options) => options.length);
    for (let i = 0; i < Math.min(rows, 8); i++) {
      // Row 1 is selected already after a backend switch: select another first so "change" fires.
      if (i === 0) await page.selectOption("#cancer-row", "1");
      await record("cancer", `${backend}: breast-cancer row ${i + 1}`, () => page.selectOption("#cancer-row", String(i)));
    }
    await page.fill('#cancer-fields input[data-index="0"]', "27.5");
    await record("cancer", `${backend}: row edited (mean radius 27.5)`,
      () => page.dispatchEvent('#cancer-fields input[data-index="0"]', "change"));
    // Held-out digit images, then a drawn "7".
    for (let i = 0; i < 5; i++) {
      await record("digits", `${backend}: digits test image ${i + 1}`, () => page.click("#digits-sample"));
    }
    await page.click("#digits-clear");
    const box = await page.locator("#pad").boundingBox();
    const at = (x, y) => [box.x + x * box.width, box.y + y * box.height];
    await page.mouse.move(...at(0.25, 0.2));
    await page.mouse.down();
    for (const [x, y] of [[0.5, 0.2], [0.75, 0.2], [0.65, 0.45], [0.55, 0.65], [0.48, 0.85]]) {
      await page.mouse.move(...at(x, y), { steps: 8 });
    }
    await record("digits", `${backend}: drawn 7`, () => page.mouse.up());
    await page.waitForFunction(() => document.getElementById("digits-meta").textContent.includes("your drawing"));
  }
  await page.screenshot({ path: screenshotPath, fullPage: true });
  const webgpu = await page.evaluate(async () => {
    const navigatorGpu = "gpu" in navigator;
    const adapter = navigatorGpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
    return { navigator_gpu: navigatorGpu, adapter: adapter !== null };
  });
  writeFileSync(resultsPath, JSON.stringify({ cases, webgpu, status, console_errors: consoleErrors }, null, 1));
  console.log(`demo.mjs: ${cases.length} predictions recorded; screenshot ${screenshotPath}`);
} catch (error) {
  console.error(`demo.mjs: ${error.message}`);
  if (consoleErrors.length) console.error(`page errors:\n${consoleErrors.join("\n")}`);
  await page.screenshot({ path: screenshotPath, fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
  server.close();
}
