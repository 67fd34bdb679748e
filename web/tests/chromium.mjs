// What the project's Chromium drivers share (web/tests/demo.mjs, bench/wasm/bench.mjs,
// runtime-wasm/browser/run_packages.mjs): a static file server on a loopback port and Debian's headless Chromium
// (playwright-core; as root: --no-sandbox; a fresh user-data-dir; --enable-unsafe-webgpu, which gives a real WebGPU
// adapter, SwiftShader here).
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, resolve, sep } from "node:path";
import { chromium } from "playwright-core";

const TYPES = {
  ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
  ".wasm": "application/wasm", ".json": "application/json", ".csv": "text/csv",
};

/** The URL path `path` as a file inside `base`, or null where it would leave `base`. */
export function inside(base, path) {
  const file = resolve(base, `.${path.startsWith("/") ? "" : "/"}${path}`);
  return file === base || file.startsWith(base + sep) ? file : null;
}

/**
 * Serves GET requests on an ephemeral 127.0.0.1 port: `route(path)` (the decoded URL path) gives a file (a folder
 * serves its index.html), `{body, type}`, or null for 404. Resolves to the listening server.
 */
export function serve(route) {
  const server = createServer((request, response) => {
    try {
      let target = route(decodeURIComponent(new URL(request.url, "http://x").pathname));
      if (target === null) throw new Error("not served");
      if (typeof target === "string") {
        const file = statSync(target).isDirectory() ? join(target, "index.html") : target;
        target = { body: readFileSync(file), type: TYPES[extname(file)] ?? "application/octet-stream" };
      }
      response.writeHead(200, { "content-type": target.type });
      response.end(target.body);
    } catch {
      response.writeHead(404);
      response.end();
    }
  });
  return new Promise((done) => server.listen(0, "127.0.0.1", () => done(server)));
}

/**
 * Launches headless Chromium (`$CHROMIUM`, else /usr/bin/chromium) in a fresh profile; `options` adds to
 * playwright's launch options (e.g. a viewport). Resolves to `{context, page, close}`; close() also removes the
 * profile.
 */
export async function launchChromium(options = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), "tern-chromium-"));
  const removeProfile = () => rmSync(userDataDir, { recursive: true, force: true });
  try {
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      headless: true,
      args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"],
      ...options,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    return { context, page, close: async () => { await context.close(); removeProfile(); } };
  } catch (error) {
    removeProfile();
    throw error;
  }
}
