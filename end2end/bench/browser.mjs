// The browser half of `make bench`: client crypto (the app's WASM beside WebCrypto, in one page
// load), the time to join a room in the real app, and the bundle sizes. Writes JSON for
// `loadgen render`.
//
// Env: SERVER_BIN (release server), LEPTOS_SITE_ROOT (its site, precompressed by `make build`),
// STATIC_DIST (the Trunk bundle), BENCH_PKG (the crypto exports: crypto-bench.js and
// crypto-bench_bg.wasm), OUT (the JSON file to write).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { chromium } from '@playwright/test';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`browser.mjs: set ${name}`);
  return value;
};
const [serverBin, siteRoot, staticDist, benchPkg, out] =
  ['SERVER_BIN', 'LEPTOS_SITE_ROOT', 'STATIC_DIST', 'BENCH_PKG', 'OUT'].map(env);

function sizes(build, dir, files) {
  return files.map((file) => {
    const raw = readFileSync(join(dir, file));
    return {
      build,
      file,
      raw: raw.length,
      gzip: gzipSync(raw, { level: 9 }).length,
      brotli: brotliCompressSync(raw, {
        params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length },
      }).length,
    };
  });
}

const assets = (dir) => readdirSync(dir).filter((f) => /\.(wasm|js|css)$/.test(f)).sort();

async function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function startServer() {
  const port = await freePort();
  const data = mkdtempSync(join(tmpdir(), 'ec-bench-browser-'));
  const child = spawn(serverBin, [], {
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      DATA_DIR: data,
      DATABASE_URL: `sqlite:${join(data, 'bench.db')}`,
      ENCRYPTION_KEY: [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, '0')).join(''),
      LEPTOS_SITE_ROOT: siteRoot,
    },
    stdio: 'ignore',
  });
  const origin = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${origin}/healthz`)).ok) return { child, origin };
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error('browser.mjs: the server did not start');
}

// Runs in the page: every figure from one page load. The nonce and key are fixed: this page
// measures speed, and nothing sealed here is ever sent.
const PAGE = `<!doctype html><meta charset="utf-8"><title>crypto bench</title><script type="module">
import init, { bench_pbkdf2, bench_seal, bench_open } from './crypto-bench.js';
await init();
const enc = new TextEncoder();
const code = 'ABCDEFGHJKMNPQRSTVWXYZ0123';
const salt = enc.encode('ephemeral-chat/v1/pbkdf2');
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function time(f) { const t = performance.now(); await f(); return performance.now() - t; }
const base = await crypto.subtle.importKey('raw', enc.encode(code), 'PBKDF2', false, ['deriveBits']);
const webPbkdf2 = (n) => crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations: n }, base, 256);
// Same output both ways, or the comparison means nothing.
const a = bench_pbkdf2(code, 1000), b = new Uint8Array(await webPbkdf2(1000));
if (a.join() !== b.join()) throw new Error('WASM and WebCrypto PBKDF2 disagree');
const N = 600000, wasmRuns = [], webRuns = [];
for (let i = 0; i < 3; i++) {
  wasmRuns.push(await time(() => bench_pbkdf2(code, N)));
  webRuns.push(await time(() => webPbkdf2(N)));
}
const key = crypto.getRandomValues(new Uint8Array(32)), nonce = crypto.getRandomValues(new Uint8Array(12));
const aad = crypto.getRandomValues(new Uint8Array(61)), plain = crypto.getRandomValues(new Uint8Array(1024));
const ck = await crypto.subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt', 'decrypt']);
const gcm = { name: 'AES-GCM', iv: nonce, additionalData: aad };
const sealedWasm = bench_seal(key, nonce, plain, aad);
const sealedWeb = new Uint8Array(await crypto.subtle.encrypt(gcm, ck, plain));
if (sealedWasm.join() !== sealedWeb.join()) throw new Error('WASM and WebCrypto AES-GCM disagree');
const OPS = 2000;
async function perOp(f) { for (let i = 0; i < 200; i++) await f(); const t = performance.now(); for (let i = 0; i < OPS; i++) await f(); return (performance.now() - t) * 1000 / OPS; }
// A file's chunk (64 KiB), sealed as the page seals one: WebCrypto imports the file's key for
// each chunk (room/browser.rs), so the import is timed with it.
const chunk = crypto.getRandomValues(new Uint8Array(65536)), CHUNK_OPS = 300;
async function perChunk(f) { for (let i = 0; i < 30; i++) await f(); const t = performance.now(); for (let i = 0; i < CHUNK_OPS; i++) await f(); return (performance.now() - t) * 1000 / CHUNK_OPS; }
const importAndSeal = async () => crypto.subtle.encrypt(gcm, await crypto.subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt']), chunk);
window.result = {
  pbkdf2: { iterations: N, wasm_ms: median(wasmRuns), webcrypto_ms: median(webRuns) },
  aes_gcm: {
    bytes: plain.length,
    wasm_seal_us: await perOp(() => bench_seal(key, nonce, plain, aad)),
    wasm_open_us: await perOp(() => { if (!bench_open(key, nonce, sealedWasm, aad)) throw new Error('open failed'); }),
    webcrypto_seal_us: await perOp(() => crypto.subtle.encrypt(gcm, ck, plain)),
    webcrypto_open_us: await perOp(() => crypto.subtle.decrypt(gcm, ck, sealedWeb)),
  },
  file_chunk: {
    bytes: chunk.length,
    wasm_seal_us: await perChunk(() => bench_seal(key, nonce, chunk, aad)),
    webcrypto_seal_us: await perChunk(importAndSeal),
  },
};
</script>`;

async function cryptoFigures(browser, origin) {
  const page = await browser.newPage();
  // The bench page and its module are served from disk at the server's own origin (a secure
  // context, as WebCrypto needs); nothing of it is part of the app.
  await page.route(`${origin}/crypto-bench/**`, (route) => {
    const name = new URL(route.request().url()).pathname.split('/').pop() || 'index.html';
    if (name === 'index.html') return route.fulfill({ contentType: 'text/html', body: PAGE });
    const type = name.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
    return route.fulfill({ contentType: type, body: readFileSync(join(benchPkg, name)) });
  });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${origin}/crypto-bench/index.html`);
  await page.waitForFunction(() => window.result || null, null, { timeout: 120_000, polling: 500 }).catch(() => {
    throw new Error(`crypto bench page failed: ${errors.join('; ')}`);
  });
  const result = await page.evaluate(() => window.result);
  await page.close();
  return result;
}

// From opening an invite link to "Connected", on the page's own clock (performance.now() counts
// from navigation start). The code comes from the app's own generator on the landing page.
// With `withoutWebCrypto`, the page has no crypto.subtle (as over plain HTTP on a LAN address),
// so the app derives the keys with its Rust code in WASM.
async function joinFigure(browser, origin, withoutWebCrypto = false) {
  const page = await browser.newPage();
  await page.goto(`${origin}/`);
  await page.locator('body[data-hydrated="true"]').waitFor();
  await page.getByRole('button', { name: 'Generate new code' }).click();
  const code = (await page.getByLabel('Room code', { exact: true }).textContent()).trim();
  const wasm = {};
  const times = [];
  for (let i = 0; i < 3; i++) {
    const room = await browser.newPage();
    room.on('response', async (response) => {
      if (response.url().endsWith('.wasm')) {
        wasm.encoding = (await response.allHeaders())['content-encoding'] ?? 'identity';
        wasm.bytes = (await response.request().sizes()).responseBodySize;
      }
    });
    if (withoutWebCrypto) await room.addInitScript(() => Object.defineProperty(crypto, 'subtle', { value: undefined }));
    await room.addInitScript(() => {
      new MutationObserver(() => {
        const status = document.querySelector('[role="status"]');
        if (!window.connectedAt && status?.textContent.includes('Connected')) window.connectedAt = performance.now();
      }).observe(document, { subtree: true, childList: true, characterData: true });
    });
    await room.goto(`${origin}/room#${code}`);
    times.push(await (await room.waitForFunction(() => window.connectedAt, null, { timeout: 30_000 })).jsonValue());
    await room.close();
  }
  await page.close();
  return { join_ms: times.sort((a, b) => a - b)[1], wasm };
}

// A 10 MiB file through the real page, between two pages of one room on this relay (SQLite,
// default settings): from Send to the sender's card saying the upload is stored, and from the
// click on the sealed card to "Save file" (downloaded and decrypted whole); then saved, which
// burns it. The median of three, each in a fresh room. Chromium's WebCrypto seals and opens.
const TRANSFER_BYTES = 10 * 1024 * 1024;
async function transferFigure(browser, origin) {
  const runs = [];
  for (let i = 0; i < 3; i++) {
    const [alice, bob] = [await browser.newPage(), await browser.newPage()];
    await alice.goto(`${origin}/`);
    await alice.locator('body[data-hydrated="true"]').waitFor();
    await alice.getByRole('button', { name: 'Generate new code' }).click();
    const code = (await alice.getByLabel('Room code', { exact: true }).textContent()).trim();
    for (const page of [alice, bob]) {
      await page.goto(`${origin}/room#${code}`);
      await page.getByRole('status').filter({ hasText: /\bConnected/ }).waitFor({ timeout: 30_000 });
    }
    await alice.locator('#attach').setInputFiles({ name: 'bench.bin', mimeType: 'application/octet-stream', buffer: randomBytes(TRANSFER_BYTES) });
    let t = performance.now();
    await alice.getByRole('button', { name: 'Send', exact: true }).click();
    await alice.getByText('Waiting to be opened').waitFor({ timeout: 120_000 });
    const upload_ms = performance.now() - t;
    await bob.locator('.card button.sealed').waitFor();
    t = performance.now();
    await bob.locator('.card button.sealed').click();
    const save = bob.getByRole('button', { name: 'Save file' });
    await save.waitFor({ timeout: 120_000 });
    const download_ms = performance.now() - t;
    const [download] = await Promise.all([bob.waitForEvent('download'), save.click()]);
    if ((await download.path()) === null) throw new Error('browser.mjs: the file was not saved');
    await alice.getByText('Deleted from the server').waitFor({ timeout: 30_000 });
    runs.push({ upload_ms, download_ms });
    await alice.close();
    await bob.close();
  }
  const median = (xs) => xs.sort((a, b) => a - b)[1];
  const upload_ms = median(runs.map((r) => r.upload_ms));
  const download_ms = median(runs.map((r) => r.download_ms));
  return { bytes: TRANSFER_BYTES, upload_ms, download_ms };
}

const { child, origin } = await startServer();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const figures = await cryptoFigures(browser, origin);
  const join = await joinFigure(browser, origin);
  const joinFallback = await joinFigure(browser, origin, true);
  const transfer = await transferFigure(browser, origin);
  const result = {
    chromium: `Chromium ${browser.version()}`,
    ...figures,
    join_ms: join.join_ms,
    join_without_webcrypto_ms: joinFallback.join_ms,
    sizes: [...sizes('ssr', join_pkg(), assets(join_pkg())), ...sizes('static', staticDist, assets(staticDist))],
    served_wasm_encoding: join.wasm.encoding,
    served_wasm_bytes: join.wasm.bytes,
    file_transfer: transfer,
  };
  writeFileSync(out, JSON.stringify(result, null, 2));
  console.log(`browser.mjs: PBKDF2 ${result.pbkdf2.wasm_ms.toFixed(0)} ms (WASM) vs ${result.pbkdf2.webcrypto_ms.toFixed(0)} ms (WebCrypto); join ${result.join_ms.toFixed(0)} ms (${result.join_without_webcrypto_ms.toFixed(0)} ms without WebCrypto); 10 MiB file up ${transfer.upload_ms.toFixed(0)} ms, down ${transfer.download_ms.toFixed(0)} ms`);
} finally {
  await browser.close();
  child.kill('SIGKILL');
}

function join_pkg() {
  return join(siteRoot, 'pkg');
}
