// The static (Trunk) bundle only: its loader runs the app only from the JS and WASM whose SHA-384
// index.html names, and never inside another page's frame. Each copy of the bundle is served by
// a plain host of this file's own that, like a careless static host, sends no frame-ancestors.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createServer } from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from '@playwright/test';
import { test, expect, problemsOf, ready } from './support';

const dist = process.env.STATIC_DIST!;
const BUNDLE_PORT = 3113;
const FRAMER_PORT = 3114;
const bundleOrigin = `http://127.0.0.1:${BUNDLE_PORT}`;
const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
};

/** Serves `dir` on `port` (`/` and `/room` as their index.html) while `body` runs. */
async function hosting<T>(dir: string, port: number, body: () => Promise<T>): Promise<T> {
  const server = createServer((req, res) => {
    let name = new URL(req.url!, 'http://host').pathname;
    if (name.endsWith('/')) name += 'index.html';
    else if (!path.extname(name)) name += '/index.html';
    const file = path.join(dir, name);
    if (!file.startsWith(dir + path.sep) || !fs.existsSync(file)) return res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': types[path.extname(file)] ?? 'application/octet-stream', 'Cache-Control': 'no-cache' });
    res.end(fs.readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  try {
    return await body();
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** A copy of the built bundle, and the name of its file ending in `suffix`. */
function copyOfBundle(suffix: string): { dir: string; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ephemeral-chat-bundle-'));
  fs.cpSync(dist, dir, { recursive: true });
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(suffix));
  expect(files, `one ${suffix} file in ${dist}`).toHaveLength(1);
  return { dir, file: files[0] };
}

/** Changes one byte of `file` in place at `offset` to `value`. */
function changeByte(file: string, offset: number, value: number) {
  const bytes = fs.readFileSync(file);
  expect(bytes[offset]).not.toBe(value);
  bytes[offset] = value;
  fs.writeFileSync(file, bytes);
}

async function expectStopped(page: Page, message: RegExp) {
  await expect(page.getByRole('alert')).toHaveText(message);
  // It stays stopped: the app never mounts, so nothing on the page can be pressed.
  await expect(page.locator('body[data-hydrated]')).toHaveCount(0);
  await expect(page.getByRole('button')).toHaveCount(0);
}

test('an untouched copy of the bundle starts from its checked files on any plain host', async ({ people }) => {
  const { dir } = copyOfBundle('.wasm');
  await hosting(dir, BUNDLE_PORT, async () => {
    const page = await people.open();
    const fetched: string[] = [];
    page.on('request', (r) => fetched.push(`${r.resourceType()} ${new URL(r.url()).pathname}`));
    await page.goto(`${bundleOrigin}/`);
    await ready(page);
    await page.getByRole('button', { name: 'Generate new code' }).click();
    await expect(page.getByLabel('Room code', { exact: true })).toHaveText(/^([0-9A-Z]{5}-){4}[0-9A-Z]{5}$/);
    // The JS and the WASM are each downloaded once, by the loader's checked fetch.
    const app = fetched.filter((f) => /\.(js|wasm)$/.test(f));
    expect(app).toHaveLength(2);
    expect(app).toEqual(
      expect.arrayContaining([expect.stringMatching(/^fetch \/\S+\.js$/), expect.stringMatching(/^fetch \/\S+_bg\.wasm$/)]),
    );
    expect(problemsOf(page)).toEqual([]);
  });
});

test('one changed byte in the WASM stops the page with a message saying so', async ({ people }) => {
  const { dir, file } = copyOfBundle('_bg.wasm');
  const wasm = path.join(dir, file);
  // A letter of a label the app shows: still a valid module, which would start, as Chromium
  // ignores `integrity` on a WASM preload; only the loader's check can stop it.
  const label = fs.readFileSync(wasm).indexOf('Generate new code');
  expect(label, 'the WASM holds the label "Generate new code"').toBeGreaterThan(0);
  changeByte(wasm, label, 'g'.charCodeAt(0));
  expect(WebAssembly.validate(fs.readFileSync(wasm))).toBe(true);

  await hosting(dir, BUNDLE_PORT, async () => {
    const page = await people.open();
    await page.goto(`${bundleOrigin}/`);
    await expectStopped(
      page,
      new RegExp(`^Stopped: this copy of Ephemeral Chat has been altered\\. ${file.replace(/\./g, '\\.')} is not the file`),
    );
  });
});

test('one changed byte in the JS stops the page with a message saying so', async ({ people }) => {
  const { dir, file } = copyOfBundle('.js');
  const js = path.join(dir, file);
  // A space made a tab: the same program, still valid JavaScript, but not the published bytes.
  changeByte(js, fs.readFileSync(js).indexOf(' '), '\t'.charCodeAt(0));
  const asModule = path.join(dir, 'check.mjs');
  fs.copyFileSync(js, asModule);
  execFileSync('node', ['--check', asModule]);

  await hosting(dir, BUNDLE_PORT, async () => {
    const page = await people.open();
    await page.goto(`${bundleOrigin}/room`);
    await expectStopped(
      page,
      new RegExp(`^Stopped: this copy of Ephemeral Chat has been altered\\. ${file.replace(/\./g, '\\.')} is not the file`),
    );
  });
});

test('the page refuses to run inside another page’s frame, and says so', async ({ people }) => {
  const { dir } = copyOfBundle('.wasm');
  const framer = fs.mkdtempSync(path.join(os.tmpdir(), 'ephemeral-chat-framer-'));
  fs.writeFileSync(
    path.join(framer, 'index.html'),
    `<!DOCTYPE html><title>Another site</title><iframe title="Ephemeral Chat" src="${bundleOrigin}/room"></iframe>`,
  );
  await hosting(dir, BUNDLE_PORT, () =>
    hosting(framer, FRAMER_PORT, async () => {
      const page = await people.open();
      const fetched: string[] = [];
      page.on('request', (r) => fetched.push(r.url()));
      await page.goto(`http://127.0.0.1:${FRAMER_PORT}/`);
      const frame = page.frameLocator('iframe[title="Ephemeral Chat"]');
      await expect(frame.getByRole('alert')).toHaveText(
        'Stopped: Ephemeral Chat does not run inside another page. Open it directly, in its own tab.',
      );
      await expect(frame.locator('body[data-hydrated]')).toHaveCount(0);
      await expect(frame.getByRole('button')).toHaveCount(0);
      // It stopped before downloading the app at all.
      expect(fetched.filter((url) => /\.(js|wasm)$/.test(url))).toEqual([]);
    }),
  );
});

test('the policy runs the loader by its hash, and scripts only from the bytes it checked', async ({ people, baseURL }) => {
  const html = await (await fetch(`${baseURL}/`)).text();
  const loaders = [...html.matchAll(/<script type="module">([\s\S]*?)<\/script>/g)].map((m) => m[1]);
  expect(loaders).toHaveLength(1);
  const loaderHash = createHash('sha256').update(loaders[0]).digest('base64');
  const page = await people.open();
  await page.goto('/');
  await ready(page);
  const policy = (await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content'))!;
  expect(policy).toContain(`; script-src 'sha256-${loaderHash}' blob: 'wasm-unsafe-eval'; worker-src 'none'; `);
  // Not even the bundle's own JS file may be run as a script straight from the host.
  const js = fs.readdirSync(dist).find((f) => f.endsWith('.js'))!;
  const refused = await page.evaluate(
    (src) =>
      new Promise<string>((resolve) => {
        document.addEventListener('securitypolicyviolation', (e) => resolve(e.effectiveDirective));
        const script = document.createElement('script');
        script.type = 'module';
        script.src = src;
        document.head.append(script);
      }),
    `/${js}`,
  );
  expect(refused).toMatch(/^script-src/);
  // blob: is there for the loader's import; a worker made from a blob is still refused.
  const worker = await page.evaluate(
    () =>
      new Promise<string>((resolve) => {
        document.addEventListener('securitypolicyviolation', (e) => resolve(e.effectiveDirective));
        try {
          new Worker(URL.createObjectURL(new Blob([''], { type: 'text/javascript' })));
        } catch {
          // Some browsers throw as well as reporting.
        }
      }),
  );
  expect(worker).toBe('worker-src');
});
